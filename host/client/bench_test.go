package client

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// Each benchmark measures its baseline in the same run (a direct
// memstorage call, or one bare round trip) and reports the ratio, so the
// figures compare like with like on whatever machine runs them.

func benchSetup(b *testing.B, n int, mod func(*Options)) (*testServer, *Client, []storage.Oid) {
	b.Helper()
	ts := startServer(b, nil)
	c := openClient(b, ts.addr, mod)
	ctx := context.Background()
	oids, err := c.NewOids(ctx, n)
	if err != nil {
		b.Fatal(err)
	}
	txn, _ := c.Begin(ctx, storage.TxMeta{})
	for _, o := range oids {
		txn.Store(ctx, storage.Record{Oid: o, Data: make([]byte, 182)})
	}
	if err := txn.Vote(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := txn.Finish(ctx); err != nil {
		b.Fatal(err)
	}
	return ts, c, oids
}

// timeDirect measures the mean time of fn over a fixed count.
func timeDirect(n int, fn func(i int)) time.Duration {
	start := time.Now()
	for i := range n {
		fn(i)
	}
	return time.Since(start) / time.Duration(n)
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// BenchmarkLoadHit: a load served by the client cache, against a direct
// memstorage load.
func BenchmarkLoadHit(b *testing.B) {
	ts, c, oids := benchSetup(b, 1000, nil)
	ctx := context.Background()
	for _, o := range oids {
		c.Load(ctx, o)
	}
	st := ts.stores["main"]
	direct := timeDirect(20000, func(i int) { st.Load(ctx, oids[i%len(oids)]) })
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		if _, err := c.Load(ctx, oids[i%len(oids)]); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start) / time.Duration(max(b.N, 1))
	b.ReportMetric(float64(per)/float64(direct), "x-direct")
}

// BenchmarkLoadMiss: one uncached object at a time (the client cache is
// off, the server's holds it), against a bare round trip (Ping) and a
// direct memstorage load. Reports p50/p99 in µs.
func BenchmarkLoadMiss(b *testing.B) {
	ts, c, oids := benchSetup(b, 1000, func(o *Options) { o.CacheSize = -1 })
	ctx := context.Background()
	var rtts []time.Duration
	for range 2000 {
		d, err := c.Conn().Ping(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, d)
	}
	rtt := percentile(rtts, 0.5)
	st := ts.stores["main"]
	direct := timeDirect(20000, func(i int) { st.Load(ctx, oids[i%len(oids)]) })
	lat := make([]time.Duration, 0, 1<<16)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if _, err := c.Load(ctx, oids[i%len(oids)]); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	b.StopTimer()
	p50 := percentile(lat, 0.5)
	b.ReportMetric(float64(p50.Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(p50)/float64(rtt), "x-rtt")
	b.ReportMetric(float64(p50)/float64(direct), "x-direct")
}

// BenchmarkPrefetch: cold loads of 1000 objects in batches, per object.
func BenchmarkPrefetch(b *testing.B) {
	ts, _, oids := benchSetup(b, 1000, nil)
	ctx := context.Background()
	st := ts.stores["main"]
	direct := timeDirect(20000, func(i int) { st.Load(ctx, oids[i%len(oids)]) })
	b.ResetTimer()
	var objs int
	start := time.Now()
	for b.Loop() {
		b.StopTimer()
		c := openClient(b, ts.addr, nil)
		b.StartTimer()
		if err := c.Prefetch(ctx, oids); err != nil {
			b.Fatal(err)
		}
		for _, o := range oids {
			if _, err := c.Load(ctx, o); err != nil {
				b.Fatal(err)
			}
		}
		objs += len(oids)
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
	per := time.Since(start) / time.Duration(max(objs, 1))
	b.ReportMetric(float64(objs)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric(float64(per)/float64(direct), "x-direct")
}

// BenchmarkCommit: one-object transactions through the server, against
// the same commits straight on memstorage.
func BenchmarkCommit(b *testing.B) {
	ts, c, oids := benchSetup(b, 1, nil)
	ctx := context.Background()
	_ = ts
	do := func(s storage.Storage, serial storage.Tid) storage.Tid {
		txn, err := s.Begin(ctx, storage.TxMeta{})
		if err != nil {
			b.Fatal(err)
		}
		txn.Store(ctx, storage.Record{Oid: oids[0], Serial: serial, Data: make([]byte, 182)})
		if err := txn.Vote(ctx); err != nil {
			b.Fatal(err)
		}
		tid, err := txn.Finish(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return tid
	}
	// The baseline runs on a memstorage of its own: the server must stay
	// the only writer of the one it serves.
	direct := memstorage.New(memstorage.Options{})
	defer direct.Close()
	var ds storage.Tid
	perDirect := timeDirect(2000, func(int) { ds = do(direct, ds) })
	serial, _ := c.LastTid(ctx)
	lat := make([]time.Duration, 0, 1<<16)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		serial = do(c, serial)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(percentile(lat, 0.5))/float64(perDirect), "x-direct")
}

// BenchmarkAdd: one transaction creating 1000 objects of 182 bytes,
// through the server, against the same on a memstorage of its own.
func BenchmarkAdd(b *testing.B) {
	_, c, _ := benchSetup(b, 1, nil)
	ctx := context.Background()
	data := make([]byte, 182)
	add := func(s storage.Storage) {
		oids, err := s.NewOids(ctx, 1000)
		if err != nil {
			b.Fatal(err)
		}
		txn, _ := s.Begin(ctx, storage.TxMeta{})
		for _, o := range oids {
			txn.Store(ctx, storage.Record{Oid: o, Data: data})
		}
		if err := txn.Vote(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := txn.Finish(ctx); err != nil {
			b.Fatal(err)
		}
	}
	direct := memstorage.New(memstorage.Options{})
	defer direct.Close()
	perDirect := timeDirect(20, func(int) { add(direct) })
	b.ResetTimer()
	for b.Loop() {
		add(c)
	}
	per := b.Elapsed() / time.Duration(max(b.N, 1))
	b.ReportMetric(1000/per.Seconds(), "objects/s")
	b.ReportMetric(float64(per)/float64(perDirect), "x-direct")
}

// BenchmarkCommitOnePhase: the same one-object transactions as
// BenchmarkCommit, committed with storage.CommitOnePhase (one Commit
// request instead of Vote and Finish).
func BenchmarkCommitOnePhase(b *testing.B) {
	_, c, oids := benchSetup(b, 1, nil)
	ctx := context.Background()
	do := func(s storage.Storage, serial storage.Tid) storage.Tid {
		txn, err := s.Begin(ctx, storage.TxMeta{})
		if err != nil {
			b.Fatal(err)
		}
		txn.Store(ctx, storage.Record{Oid: oids[0], Serial: serial, Data: make([]byte, 182)})
		tid, err := storage.CommitOnePhase(ctx, txn)
		if err != nil {
			b.Fatal(err)
		}
		return tid
	}
	direct := memstorage.New(memstorage.Options{})
	defer direct.Close()
	var ds storage.Tid
	perDirect := timeDirect(2000, func(int) { ds = do(direct, ds) })
	serial, _ := c.LastTid(ctx)
	lat := make([]time.Duration, 0, 1<<16)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		serial = do(c, serial)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(percentile(lat, 0.5))/float64(perDirect), "x-direct")
}
