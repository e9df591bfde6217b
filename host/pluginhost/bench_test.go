package pluginhost

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// BenchmarkPluginHop compares each built-in backend opened in process
// (storage block in_process = true) with the same backend in the built-in
// plugin process, its hot calls carried unary (one gRPC call each, as
// before the Calls stream) and on the Calls stream (the default), on the
// same machine in the same run, the three sides interleaved. Each
// iteration runs a fixed mix, so `-benchtime 1x` (make bench) gives
// stable figures:
//
//   - load: 2,000 sequential Loads of random 200-byte records;
//   - pload: 8,000 Loads from 8 goroutines (a server pipelines its
//     clients' reads);
//   - commit: 200 sequential one-record commits (Begin, Store, then
//     storage.CommitOnePhase, as the server commits a transaction of one
//     partition: one plugin call).
//
// Reported per backend: ns per operation in process and through the
// plugin both ways, their ratios (plugin / in process; 1.00 = no cost),
// the stream's gain (unary / stream ns; above 1 = the stream is faster),
// and p50 and p99 of a sequential Load and of a commit. filestorage runs
// with sync = "none" and packless with sync = false, so the comparison is
// the plugin hop, not the disk's fsync.
func BenchmarkPluginHop(b *testing.B) {
	// Warnings only: the plugin is told the level and logs nothing per
	// operation, as in production.
	quiet := Options{Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})}
	// One plugin process per transport: the host picks the transport
	// when it connects (sdk.EnvPluginCalls).
	managers := map[string]*Manager{}
	for _, side := range []string{"unary", "stream"} {
		b.Setenv(sdk.EnvPluginCalls, map[string]string{"unary": "unary", "stream": ""}[side])
		m, _ := newManager(b, quiet)
		if _, err := m.Describe(context.Background(), BuiltinName); err != nil { // starts it now
			b.Fatal(err)
		}
		managers[side] = m
	}
	ctx := context.Background()
	types := []struct {
		typ string
		cfg func(dir string) hcl.Values
	}{
		{"filestorage", func(dir string) hcl.Values {
			return hcl.Values{"path": filepath.Join(dir, "Data.fs"), "sync": "none"}
		}},
		{"packless", func(dir string) hcl.Values { return hcl.Values{"path": dir, "sync": false} }},
		{"memory", func(string) hcl.Values { return hcl.Values{} }},
	}
	sides := []string{"inproc", "unary", "stream"}
	for _, tc := range types {
		b.Run(tc.typ, func(b *testing.B) {
			sts := map[string]storage.Storage{}
			oids := map[string][]storage.Oid{}
			for _, side := range sides {
				m := managers[side]
				if m == nil {
					m = managers["stream"]
				}
				st, err := m.OpenStorage(ctx, StorageSpec{Type: tc.typ, Name: "bench", Config: tc.cfg(b.TempDir()), InProcess: side == "inproc"})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = st.Close() })
				sts[side], oids[side] = st, preload(b, st, 1000)
			}
			res := map[string]*mixResult{}
			for _, side := range sides {
				res[side] = &mixResult{}
			}
			for b.Loop() {
				for _, side := range sides {
					res[side].add(runMix(b, sts[side], oids[side]))
				}
			}
			in := res["inproc"]
			for _, side := range []string{"unary", "stream"} {
				pl := res[side]
				report := func(name string, inD, plD time.Duration, n int) {
					inNs := float64(inD.Nanoseconds()) / float64(n)
					plNs := float64(plD.Nanoseconds()) / float64(n)
					b.ReportMetric(plNs, name+"-"+side+"-ns/op")
					b.ReportMetric(plNs/inNs, name+"-"+side+"-ratio")
				}
				report("load", in.load, pl.load, in.loads)
				report("pload", in.pload, pl.pload, in.ploads)
				report("commit", in.commit, pl.commit, in.commits)
				b.ReportMetric(quantile(pl.loadLat, 0.5), "load-"+side+"-p50-µs")
				b.ReportMetric(quantile(pl.loadLat, 0.99), "load-"+side+"-p99-µs")
				b.ReportMetric(quantile(pl.commitLat, 0.5), "commit-"+side+"-p50-µs")
				b.ReportMetric(quantile(pl.commitLat, 0.99), "commit-"+side+"-p99-µs")
			}
			for _, ph := range []struct {
				name   string
				un, st time.Duration
			}{{"load", res["unary"].load, res["stream"].load}, {"pload", res["unary"].pload, res["stream"].pload}, {"commit", res["unary"].commit, res["stream"].commit}} {
				b.ReportMetric(float64(ph.un)/float64(ph.st), ph.name+"-stream-gain")
			}
			b.ReportMetric(float64(in.load.Nanoseconds())/float64(in.loads), "load-inproc-ns/op")
			b.ReportMetric(float64(in.commit.Nanoseconds())/float64(in.commits), "commit-inproc-ns/op")
			b.ReportMetric(0, "ns/op") // the per-mix figures above are the result
		})
	}
}

// quantile returns the q-quantile of ds in µs.
func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(float64(len(s))*q))].Nanoseconds()) / 1e3
}

type mixResult struct {
	load, pload, commit    time.Duration
	loads, ploads, commits int
	// Per-call latencies of the sequential loads and of the commits.
	loadLat, commitLat []time.Duration
}

func (r *mixResult) add(o mixResult) {
	r.load += o.load
	r.pload += o.pload
	r.commit += o.commit
	r.loads += o.loads
	r.ploads += o.ploads
	r.commits += o.commits
	r.loadLat = append(r.loadLat, o.loadLat...)
	r.commitLat = append(r.commitLat, o.commitLat...)
}

func preload(b *testing.B, st storage.Storage, n int) []storage.Oid {
	ctx := context.Background()
	oids, err := st.NewOids(ctx, n)
	if err != nil {
		b.Fatal(err)
	}
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 200)
	for _, o := range oids {
		if err := txn.Store(ctx, storage.Record{Oid: o, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	if err := txn.Store(ctx, storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: oids}); err != nil {
		b.Fatal(err)
	}
	if err := txn.Vote(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := txn.Finish(ctx); err != nil {
		b.Fatal(err)
	}
	return oids
}

func runMix(b *testing.B, st storage.Storage, oids []storage.Oid) mixResult {
	ctx := context.Background()
	var r mixResult
	// A fixed pseudo-random walk, the same for both storages.
	x := uint64(88172645463325252)
	next := func() storage.Oid {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return oids[x%uint64(len(oids))]
	}
	r.loadLat = make([]time.Duration, 0, 2000)
	for range 2000 {
		t0 := time.Now()
		if _, err := st.Load(ctx, next()); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		r.load += d
		r.loadLat = append(r.loadLat, d)
	}
	r.loads = 2000

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				if _, err := st.Load(ctx, oids[(g*1000+i*7)%len(oids)]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	r.pload, r.ploads = time.Since(start), 8000

	data := make([]byte, 200)
	start = time.Now()
	for i := range 200 {
		o := next()
		rec, err := st.Load(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		data[0] = byte(i)
		// The load of the serial is part of an application's commit, but
		// time only the commit itself.
		t0 := time.Now()
		txn, err := st.Begin(ctx, storage.TxMeta{User: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if err := txn.Store(ctx, storage.Record{Oid: o, Serial: rec.Serial, Data: data}); err != nil {
			b.Fatal(err)
		}
		if _, err := storage.CommitOnePhase(ctx, txn); err != nil {
			b.Fatal(fmt.Errorf("commit: %w", err))
		}
		d := time.Since(t0)
		r.commit += d
		r.commitLat = append(r.commitLat, d)
	}
	_ = start
	r.commits = 200
	return r
}
