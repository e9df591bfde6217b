#!/usr/bin/env python3
"""Wall-time breakdown of commits from walltrace files (see walltrace.go).

usage: breakdown.py big|small DIR[,DIR...]

Each DIR holds the walltrace-PID.txt files of one run (ZHOST_WALLTRACE=DIR
zhost bench ...); give several comma-separated directories to compare
builds column by column. A commit is the marks from the worker's
"c.send Commit" to its "c.woke"; "big" keeps the commits whose server-side
stores took over 100 µs (the 1000-object add and update), "small" the
others (the one-object commits). Prints a markdown table of per-step
medians and 90th percentiles in microseconds. Marks are comparable across
processes because they are wall-clock nanoseconds on one machine; it
assumes one commit in flight at a time (zhost bench -concurrency 1).
"""
import glob
import statistics as st
import sys

STEPS = [
    ('worker: encode Commit frame', 'c.send', 'c.encoded'),
    ('worker: write Commit frame', 'c.encoded', 'c.written'),
    ('worker send -> server has read the frame', 'c.send', 's.read'),
    ('server: goroutine + decode frame', 's.read', 's.prepare'),
    ('server: Begin + Store x N into the plugin batch', 's.prepare', 's.backend'),
    ('host: gRPC Send of the Commit call', 'h.send', 'h.sent'),
    ('host sent -> plugin Recv returns', 'h.sent', 'p.recv'),
    ('plugin: call goroutine starts', 'p.recv', 'p.run'),
    ('plugin: unpack records + backend Store x N', 'p.decode', 'p.backend'),
    ('backend CommitOnePhase (vote, finish, fsync)', 'p.backend', 'p.backendret'),
    ('plugin: gRPC Send of the reply', 'p.send', 'p.sent'),
    ('plugin sent -> host reader has the reply', 'p.sent', 'h.recv'),
    ('host: reader -> caller hand-off', 'h.recv', 'h.woke'),
    ('server: publish (cache, invalidation log, pushes)', 's.publish', 's.published'),
    ('server: reply via writer goroutine, written', 's.published', 's.written'),
    ('server written -> worker has read the frame', 's.written', 'c.read'),
    ('worker: apply commit to its cache, wake caller', 'c.read', 'c.woke'),
    ('TOTAL: worker send -> worker has the tid', 'c.send', 'c.woke'),
]


def commits(d):
    ev = []
    for f in glob.glob(d + '/walltrace-*.txt'):
        for line in open(f):
            t, w = line.rstrip('\n').split(' ', 1)
            ev.append((int(t), w))
    ev.sort()
    out, cur = [], None
    for t, w in ev:
        if w.startswith('c.send Commit'):
            cur = [(t, w)]
            continue
        if cur is None:
            continue
        cur.append((t, w))
        if w == 'c.woke':
            out.append(cur)
            cur = None
    return out


def marks(c):
    d, published = {}, None
    for t, w in c:
        w = w.split(' ')[0]
        if w == 's.published':
            published = t
        if w in ('s.write', 's.written') and (published is None or t < published):
            continue  # another frame written before this commit's reply
        if w == 'c.read':
            d[w] = t  # the last frame read: the reply
            continue
        d.setdefault(w, t)
    return d


def main():
    big = sys.argv[1] == 'big'
    cols = []
    for d in sys.argv[2].split(','):
        cs = [marks(c) for c in commits(d)]
        cs = [m for m in cs if 'c.woke' in m and 'p.backend' in m and
              ((m.get('s.backend', 0) - m.get('s.prepare', 0) > 100000) == big)]
        col = {}
        for name, a, b in STEPS:
            v = sorted((m[b] - m[a]) / 1000 for m in cs if a in m and b in m)
            col[name] = '%.0f (%.0f)' % (st.median(v), v[int(len(v) * .9)]) if v else 'n/a'
        cols.append((d, len(cs), col))
    print('| step | ' + ' | '.join('%s: p50 (p90) µs, n=%d' % (d, n) for d, n, _ in cols) + ' |')
    print('|---|' + '---|' * len(cols))
    for name, _, _ in STEPS:
        print('| %s | ' % name + ' | '.join(col[name] for _, _, col in cols) + ' |')


if __name__ == '__main__':
    main()
