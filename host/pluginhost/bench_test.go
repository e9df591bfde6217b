package pluginhost

import (
	"context"
	"io"

	"fmt"
	"github.com/hashicorp/go-hclog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
)

// BenchmarkPluginHop compares each built-in backend opened in process
// (storage block in_process = true) with the same backend in the built-in
// plugin process, on the same machine in the same run. Each iteration runs
// a fixed mix, so `-benchtime 1x` (make bench) gives stable figures:
//
//   - load: 2,000 sequential Loads of random 200-byte records;
//   - pload: 8,000 Loads from 8 goroutines (a server pipelines its
//     clients' reads);
//   - commit: 200 sequential one-record commits (Begin, Store, Vote,
//     Finish).
//
// Reported per backend: ns per operation in process and through the
// plugin, and their ratio (plugin / in process; 1.00 = no cost).
// filestorage runs with sync = "none" and packless with sync = false, so
// the comparison is the plugin hop, not the disk's fsync.
func BenchmarkPluginHop(b *testing.B) {
	// Warnings only: the plugin is told the level and logs nothing per
	// operation, as in production.
	m, _ := newManager(b, Options{Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})})
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
	for _, tc := range types {
		b.Run(tc.typ, func(b *testing.B) {
			open := func(inProcess bool) (storage.Storage, []storage.Oid) {
				st, err := m.OpenStorage(ctx, StorageSpec{Type: tc.typ, Name: "bench", Config: tc.cfg(b.TempDir()), InProcess: inProcess})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = st.Close() })
				return st, preload(b, st, 1000)
			}
			inSt, inOids := open(true)
			plSt, plOids := open(false)
			var res [2]mixResult
			for b.Loop() {
				res[0] = res[0].add(runMix(b, inSt, inOids))
				res[1] = res[1].add(runMix(b, plSt, plOids))
			}
			report := func(name string, in, pl time.Duration, n int) {
				inNs := float64(in.Nanoseconds()) / float64(n)
				plNs := float64(pl.Nanoseconds()) / float64(n)
				b.ReportMetric(inNs, name+"-inproc-ns/op")
				b.ReportMetric(plNs, name+"-plugin-ns/op")
				b.ReportMetric(plNs/inNs, name+"-ratio")
			}
			report("load", res[0].load, res[1].load, res[0].loads)
			report("pload", res[0].pload, res[1].pload, res[0].ploads)
			report("commit", res[0].commit, res[1].commit, res[0].commits)
			b.ReportMetric(0, "ns/op") // the per-mix figures above are the result
		})
	}
}

type mixResult struct {
	load, pload, commit    time.Duration
	loads, ploads, commits int
}

func (r mixResult) add(o mixResult) mixResult {
	return mixResult{r.load + o.load, r.pload + o.pload, r.commit + o.commit, r.loads + o.loads, r.ploads + o.ploads, r.commits + o.commits}
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
	start := time.Now()
	for range 2000 {
		if _, err := st.Load(ctx, next()); err != nil {
			b.Fatal(err)
		}
	}
	r.load, r.loads = time.Since(start), 2000

	start = time.Now()
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
		if err := txn.Vote(ctx); err != nil {
			b.Fatal(fmt.Errorf("vote: %w", err))
		}
		if _, err := txn.Finish(ctx); err != nil {
			b.Fatal(err)
		}
		r.commit += time.Since(t0)
	}
	_ = start
	r.commits = 200
	return r
}
