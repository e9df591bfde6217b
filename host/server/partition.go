package server

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

// partition is one served storage with the state the server keeps for
// it: the cache of current records, the commit lock, the subscribed
// sessions and the invalidation log.
type partition struct {
	name     string
	st       storage.Storage
	caps     storage.Capabilities
	readOnly bool
	cache    *recordCache
	// maxMsg is the server's message size limit: an invalidation
	// larger than it cannot be sent (see publish).
	maxMsg int
	// lastTidWait bounds resetAll's read of the backend's last tid
	// (CommitTimeout): it runs holding a publication turn, and a backend
	// that does not answer (a plugin being restarted, or reopening its
	// storage) must not hold up every later commit.
	lastTidWait time.Duration
	logger      hclog.Logger
	// commit serializes the partition's commits from Vote until the
	// client's Finish arrives (and undos until they are published). It
	// is released before the backend's Finish, so the next transaction's
	// vote overlaps this one's fsync (the backend's own commit lock,
	// held from its Vote to its Finish, still orders them); tickets keep
	// publication in tid order.
	commit *storage.CommitLock
	// lockWaiters counts Vote and Commit requests waiting for commit. A
	// Commit that finds others waiting when it gets the lock runs the
	// backend in two phases, so the next vote overlaps its fsync.
	lockWaiters atomic.Int32

	// Publication tickets: taken under the commit lock (so in tid
	// order), published in ticket order.
	turnMu   sync.Mutex
	turnCond *sync.Cond
	nextTurn uint64 // the next ticket to hand out
	turn     uint64 // the ticket whose turn it is to publish

	// lastTid is the newest published tid (read without mu by loads).
	lastTid atomic.Uint64

	mu   sync.Mutex // guards subs and log, and makes publication atomic
	subs map[*session]map[uint32]struct{}
	log  *invLog
}

func newPartition(name string, p Partition, o *Options) *partition {
	caps := p.Storage.Capabilities()
	if p.ReadOnly {
		caps.ReadOnly = true
	}
	p2 := &partition{
		name:        name,
		st:          p.Storage,
		caps:        caps,
		readOnly:    caps.ReadOnly,
		cache:       newRecordCache(o.CacheSize),
		maxMsg:      o.MaxMessageSize,
		lastTidWait: o.CommitTimeout,
		logger:      o.Logger.Named("partition").With("partition", name),
		commit:      storage.NewCommitLock(),
		subs:        make(map[*session]map[uint32]struct{}),
	}
	p2.turnCond = sync.NewCond(&p2.turnMu)
	return p2
}

// ticket reserves the next publication slot. The caller holds the commit
// lock, so tickets follow the order in which transactions voted, which
// is their tid order.
func (p *partition) ticket() uint64 {
	p.turnMu.Lock()
	defer p.turnMu.Unlock()
	t := p.nextTurn
	p.nextTurn++
	return t
}

// waitTurn blocks until every transaction with an earlier ticket has been
// published (or has failed). It does not block forever: each earlier
// ticket belongs to a backend Finish in progress, which ends. The caller
// must call endTurn afterwards.
func (p *partition) waitTurn(t uint64) {
	p.turnMu.Lock()
	for p.turn != t {
		p.turnCond.Wait()
	}
	p.turnMu.Unlock()
}

// endTurn passes the turn to the next ticket.
func (p *partition) endTurn() {
	p.turnMu.Lock()
	p.turn++
	p.turnCond.Broadcast()
	p.turnMu.Unlock()
}

// open reads the backend's last tid and opens the invalidation log.
func (p *partition) open(ctx context.Context, o *Options) error {
	last, err := p.st.LastTid(ctx)
	if err != nil {
		return fmt.Errorf("partition %q: last tid: %w", p.name, err)
	}
	path := ""
	if o.DataDir != "" {
		path = filepath.Join(o.DataDir, "invalidations-"+url.PathEscape(p.name)+".log")
	}
	l, err := openInvLog(path, o.InvalidationLogSize, last, p.logger)
	if err != nil {
		return fmt.Errorf("partition %q: %w", p.name, err)
	}
	p.log = l
	p.lastTid.Store(uint64(last))
	return nil
}

func (p *partition) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log == nil {
		return nil
	}
	return p.log.close()
}

// subscribe binds handle of s to the partition and answers its Open, in
// one step under mu so that no transaction falls between the catch-up and
// the first invalidation push.
func (p *partition) subscribe(s *session, handle, reqID uint32, clientLast storage.Tid) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hs := p.subs[s]
	if hs == nil {
		hs = make(map[uint32]struct{})
		p.subs[s] = hs
	}
	hs[handle] = struct{}{}
	last := storage.Tid(p.lastTid.Load())
	reply := &wire.Opened{Handle: handle, Caps: wire.CapsToBits(p.caps), LastTid: last}
	if clientLast != storage.ZeroTid && (clientLast != last || p.log.poisoned) {
		entries, ok := p.log.after(clientLast)
		if ok && catchupSize(entries) > s.srv.opts.MaxMessageSize-openedOverhead {
			// The reply could not be sent: the client drops its cache
			// instead (it would be refused again at every reconnect).
			s.logger.Info("catch-up larger than the message size limit: the client drops its cache",
				"partition", p.name, "client_last_tid", clientLast, "transactions", len(entries), "last_tid", last)
			reply.Resync = true
		} else if ok {
			reply.Catchup = entries
		} else {
			reply.Resync = true
			s.logger.Info("client is past the invalidation log's horizon: it drops its cache",
				"partition", p.name, "client_last_tid", clientLast, "horizon", p.log.since, "last_tid", last)
		}
	}
	s.send(reqID, reply)
}

// openedOverhead bounds the bytes of an Opened frame besides its
// catch-up entries: frame header, handle, caps, last tid, resync flag and
// entry count.
const openedOverhead = 64

// catchupSize is the encoded size of catch-up entries in an Opened reply.
func catchupSize(entries []wire.Invalidation) int {
	n := 0
	for _, inv := range entries {
		n += 8 + 4 + 8*len(inv.Oids)
	}
	return n
}

func (p *partition) unsubscribe(s *session, handle uint32) {
	p.mu.Lock()
	if hs := p.subs[s]; hs != nil {
		delete(hs, handle)
		if len(hs) == 0 {
			delete(p.subs, s)
		}
	}
	p.mu.Unlock()
}

func (p *partition) unsubscribeAll(s *session) {
	p.mu.Lock()
	delete(p.subs, s)
	p.mu.Unlock()
}

// publish makes a committed transaction known: it updates the cache,
// appends to the invalidation log, pushes Invalidate to every other
// subscriber and sends the committer its reply, all under mu so every
// session sees transactions in tid order. records are the new revisions
// (cached as current); oids without a record are dropped from the cache.
// collected are oids the commit removed (storage.CollectingTxn): dropped
// from the cache, even if also stored, and invalidated with oids.
func (p *partition) publish(tid storage.Tid, oids []storage.Oid, records []storage.Record, collected []storage.Oid,
	committer *session, committerHandle, reqID uint32, reply wire.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if records != nil {
		p.cache.putAll(tid, records)
	} else {
		for _, o := range oids {
			p.cache.remove(o)
		}
	}
	if len(collected) > 0 {
		for _, o := range collected {
			p.cache.remove(o)
		}
		oids = mergeOids(oids, collected)
	}
	if err := p.log.add(tid, oids); err != nil {
		p.logger.Error("invalidation log append failed; clients that reconnect will drop their caches", "error", err)
		if rerr := p.log.reset(tid); rerr != nil {
			p.logger.Error("invalidation log reset failed", "error", rerr)
		}
	}
	p.lastTid.Store(uint64(tid))
	// A commit that collected a large tree (packless) can name more oids
	// than one message may carry: every other client then drops its
	// cache instead, and so does the committer, whose reply names only
	// the collected oids it stored itself.
	tooLarge := 8+4+8*len(oids) > p.maxMsg-openedOverhead
	for s, hs := range p.subs {
		for h := range hs {
			if s == committer && h == committerHandle {
				continue
			}
			if tooLarge {
				s.send(0, &wire.Reset{Handle: h, LastTid: tid})
				continue
			}
			s.send(0, &wire.Invalidate{Handle: h, Tid: tid, Oids: oids})
		}
	}
	if committer != nil {
		if c, ok := reply.(*wire.Committed); ok && tooLarge {
			p.logger.Info("a commit collected more objects than one message names: clients drop their caches", "tid", tid, "collected", len(c.Collected))
			committer.send(0, &wire.Reset{Handle: committerHandle, LastTid: tid})
			reply = &wire.Committed{Tid: tid, Collected: storedCollected(records, c.Collected)}
		}
		committer.send(reqID, reply)
	}
}

// storedCollected returns the oids of collected that records stores (a
// new object nothing references is stored and collected at once).
func storedCollected(records []storage.Record, collected []storage.Oid) []storage.Oid {
	gone := make(map[storage.Oid]struct{}, len(collected))
	for _, o := range collected {
		gone[o] = struct{}{}
	}
	var out []storage.Oid
	for _, r := range records {
		if _, ok := gone[r.Oid]; ok {
			out = append(out, r.Oid)
		}
	}
	return out
}

// resetAll drops the cache and tells every subscriber to drop its own
// (after a pack, or after a commit whose outcome is unknown).
func (p *partition) resetAll(why string) {
	ctx, cancel := context.WithTimeout(context.Background(), p.lastTidWait)
	last, err := p.st.LastTid(ctx)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cache.clear()
	switch {
	case err != nil:
		// What committed is unknown: no client may catch up across it.
		p.logger.Warn("last tid unreadable after an unknown outcome: reconnecting clients will drop their caches", "error", err)
		p.log.poison()
	case last != storage.Tid(p.lastTid.Load()):
		if rerr := p.log.reset(last); rerr != nil {
			p.logger.Error("invalidation log reset failed", "error", rerr)
		}
		p.lastTid.Store(uint64(last))
	}
	p.logger.Info("clients told to drop their caches", "reason", why)
	for s, hs := range p.subs {
		for h := range hs {
			s.send(0, &wire.Reset{Handle: h, LastTid: storage.Tid(p.lastTid.Load())})
		}
	}
}

// load returns the current record of oid, from the cache or the backend.
func (p *partition) load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	if r, ok := p.cache.get(oid); ok {
		return r, nil
	}
	since := storage.Tid(p.lastTid.Load())
	r, err := p.st.Load(ctx, oid)
	if err != nil {
		return storage.Record{}, err
	}
	p.fill(r, since)
	return r, nil
}

// fill caches r, read from the backend when since was the newest
// published tid, unless a transaction published since then wrote it (the
// read may be older than that transaction).
func (p *partition) fill(r storage.Record, since storage.Tid) {
	p.mu.Lock()
	if storage.Tid(p.lastTid.Load()) == since || !p.log.touchedAfter(r.Oid, since) {
		p.cache.put(r)
	}
	p.mu.Unlock()
}

// loadBefore answers LoadBefore, from the cache when the current
// revision is older than tid.
func (p *partition) loadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Record, storage.Tid, error) {
	if r, ok := p.cache.get(oid); ok && r.Serial < tid {
		return r, storage.ZeroTid, nil
	}
	return p.st.LoadBefore(ctx, oid, tid)
}

// mergeOids returns stored followed by the collected oids not already in
// it (a new object nothing references is stored and collected at once).
func mergeOids(stored, collected []storage.Oid) []storage.Oid {
	seen := make(map[storage.Oid]struct{}, len(stored))
	for _, o := range stored {
		seen[o] = struct{}{}
	}
	out := slices.Clip(stored)
	for _, o := range collected {
		if _, dup := seen[o]; dup {
			continue
		}
		seen[o] = struct{}{}
		out = append(out, o)
	}
	return out
}
