package plugintest

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/testbin"
)

// pluginStorage opens a built-in backend as a real plugin subprocess of
// the zhost binary, the way a server in production runs it.
func pluginStorage(b *testing.B, typ string) storage.Storage {
	b.Helper()
	mgr, err := pluginhost.NewManager(pluginhost.Options{ZhostPath: testbin.Zhost(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mgr.Close() })
	dir := b.TempDir()
	cfg := hcl.Values{"path": dir}
	if typ == "filestorage" {
		cfg = hcl.Values{"path": filepath.Join(dir, "Data.fs")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := mgr.OpenStorage(ctx, pluginhost.StorageSpec{Type: typ, Name: "bench", Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func p(d []time.Duration, q float64) float64 {
	slices.Sort(d)
	return float64(d[min(len(d)-1, int(float64(len(d))*q))].Nanoseconds()) / 1e3
}

// BenchmarkPluginCommit: one-object commits on a plugin backend, first
// straight on the plugin (the baseline, measured in the same run), then
// through client -> server -> plugin. x-plugin is the ratio of p50s.
func BenchmarkPluginCommit(b *testing.B) {
	for _, typ := range []string{"packless", "filestorage"} {
		b.Run(typ, func(b *testing.B) {
			st := pluginStorage(b, typ)
			ctx := context.Background()
			one := func(s storage.Storage, oid storage.Oid, serial storage.Tid) storage.Tid {
				txn, err := s.Begin(ctx, storage.TxMeta{})
				if err != nil {
					b.Fatal(err)
				}
				txn.Store(ctx, storage.Record{Oid: oid, Serial: serial, Data: make([]byte, 182)})
				if err := txn.Vote(ctx); err != nil {
					b.Fatal(err)
				}
				tid, err := txn.Finish(ctx)
				if err != nil {
					b.Fatal(err)
				}
				return tid
			}
			// The root is the object: it stays reachable for packless.
			var serial storage.Tid
			var direct []time.Duration
			for range 500 {
				t0 := time.Now()
				serial = one(st, storage.RootOid, serial)
				direct = append(direct, time.Since(t0))
			}
			srv, err := server.New(server.Options{Partitions: map[string]server.Partition{"main": {Storage: st}}})
			if err != nil {
				b.Fatal(err)
			}
			srv.Start(ctx)
			b.Cleanup(func() { srv.Shutdown(context.Background()) })
			c, err := client.Open(ctx, client.Options{Addr: srv.Addr().String(), Partition: "main"})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			var via []time.Duration
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				serial = one(c, storage.RootOid, serial)
				via = append(via, time.Since(t0))
			}
			b.StopTimer()
			b.ReportMetric(p(direct, 0.5), "plugin-p50-µs")
			b.ReportMetric(p(via, 0.5), "p50-µs")
			b.ReportMetric(p(via, 0.99), "p99-µs")
			b.ReportMetric(p(via, 0.5)/p(direct, 0.5), "x-plugin")
		})
	}
}

// BenchmarkPluginLoad: loads of one object from a plugin backend:
// straight on the plugin (baseline), and through the server with the
// client cache off (the server's cache answers).
func BenchmarkPluginLoad(b *testing.B) {
	st := pluginStorage(b, "packless")
	ctx := context.Background()
	txn, _ := st.Begin(ctx, storage.TxMeta{})
	txn.Store(ctx, storage.Record{Oid: storage.RootOid, Data: make([]byte, 182)})
	txn.Vote(ctx)
	if _, err := txn.Finish(ctx); err != nil {
		b.Fatal(err)
	}
	var direct []time.Duration
	for range 2000 {
		t0 := time.Now()
		if _, err := st.Load(ctx, storage.RootOid); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(t0))
	}
	srv, err := server.New(server.Options{Partitions: map[string]server.Partition{"main": {Storage: st}}})
	if err != nil {
		b.Fatal(err)
	}
	srv.Start(ctx)
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	c, err := client.Open(ctx, client.Options{Addr: srv.Addr().String(), Partition: "main", CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	var via []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.Load(ctx, storage.RootOid); err != nil {
			b.Fatal(err)
		}
		via = append(via, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(p(direct, 0.5), "plugin-p50-µs")
	b.ReportMetric(p(via, 0.5), "p50-µs")
	b.ReportMetric(p(via, 0.99), "p99-µs")
	b.ReportMetric(p(via, 0.5)/p(direct, 0.5), "x-plugin")
}
