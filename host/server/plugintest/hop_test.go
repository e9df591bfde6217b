package plugintest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// hopObjects and hopSize are the `zhost bench` defaults.
const (
	hopObjects = 1000
	hopSize    = 182
)

// hopPhases are the phases of BenchmarkHopMix, named as in `zhost bench`.
var hopPhases = []string{"add", "update", "cold", "commit", "miss", "backend-miss"}

// hopRig is a server over one filestorage and the clients of the phases.
type hopRig struct {
	c      *client.Client // add, update, commit
	miss   *client.Client // client cache off
	addr   string
	srv    *server.Server
	oids   []storage.Oid
	serial map[storage.Oid]storage.Tid
	data   []byte
}

func newHopRig(b *testing.B, st storage.Storage, serverCache int64) *hopRig {
	b.Helper()
	ctx := context.Background()
	srv, err := server.New(server.Options{
		Partitions: map[string]server.Partition{"main": {Storage: st}},
		CacheSize:  serverCache,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	r := &hopRig{srv: srv, addr: srv.Addr().String(), serial: make(map[storage.Oid]storage.Tid), data: make([]byte, hopSize)}
	r.c = r.open(b, 0)
	r.miss = r.open(b, -1)
	return r
}

func (r *hopRig) open(b *testing.B, cacheSize int64) *client.Client {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Open(ctx, client.Options{Addr: r.addr, Partition: "main", CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func (r *hopRig) commit(ctx context.Context, oids []storage.Oid) error {
	txn, err := r.c.Begin(ctx, storage.TxMeta{User: "bench"})
	if err != nil {
		return err
	}
	for _, o := range oids {
		if err := txn.Store(ctx, storage.Record{Oid: o, Serial: r.serial[o], Data: r.data}); err != nil {
			txn.Abort(ctx)
			return err
		}
	}
	// One partition: one-phase commit, as host/db and `zhost bench`
	// commit such a transaction (one client round trip, one plugin call;
	// vote then finish took two of each).
	tid, err := storage.CommitOnePhase(ctx, txn)
	if err != nil {
		txn.Abort(ctx)
		return err
	}
	for _, o := range oids {
		r.serial[o] = tid
	}
	return nil
}

// phase runs one phase once and returns how many operations it timed
// and how long each took (one entry for add, update and cold).
func (r *hopRig) phase(b *testing.B, name string) (int, []time.Duration) {
	ctx := context.Background()
	var lat []time.Duration
	timed := func(f func() error) {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		lat = append(lat, time.Since(t0))
	}
	switch name {
	case "add":
		oids, err := r.c.NewOids(ctx, hopObjects)
		if err != nil {
			b.Fatal(err)
		}
		r.oids = oids
		timed(func() error { return r.commit(ctx, r.oids) })
		return len(r.oids), lat
	case "update":
		timed(func() error { return r.commit(ctx, r.oids) })
		return len(r.oids), lat
	case "cold":
		c := r.open(b, 0)
		timed(func() error {
			if err := c.Prefetch(ctx, r.oids); err != nil {
				return err
			}
			for _, o := range r.oids {
				if _, err := c.Load(ctx, o); err != nil {
					return err
				}
			}
			return nil
		})
		c.Close()
		return len(r.oids), lat
	case "commit":
		for i := range 200 {
			timed(func() error { return r.commit(ctx, r.oids[i:i+1]) })
		}
		return len(lat), lat
	case "miss", "backend-miss":
		for i := range 500 {
			timed(func() error { _, err := r.miss.Load(ctx, r.oids[i]); return err })
		}
		return len(lat), lat
	}
	b.Fatalf("unknown phase %q", name)
	return 0, nil
}

// hopStats gathers one phase's timings for one side.
type hopStats struct {
	ops  int
	took time.Duration
	lat  []time.Duration
}

func (h *hopStats) add(ops int, lat []time.Duration) {
	h.ops += ops
	h.lat = append(h.lat, lat...)
	for _, d := range lat {
		h.took += d
	}
}

func (h *hopStats) perSec() float64 { return float64(h.ops) / h.took.Seconds() }

func (h *hopStats) q(q float64) time.Duration {
	s := slices.Clone(h.lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*q))]
}

// BenchmarkHopMix is issue 4's measure of the plugin hop: the `zhost
// bench` phases through client -> server (record cache, batching) ->
// filestorage, with the backend as a real plugin subprocess and in the
// server's process (the baseline), interleaved round by round in the same
// run so load on the machine hits both alike. It reports each phase's
// throughput ratio plugin/in-process (1.0 = the hop is free; the goal is
// >= 0.8, a cost of at most 20%) and the p50s of the latency phases.
// backend-miss runs with the server's cache off, so every load pays the
// hop: it is the worst case, not part of the mix.
//
// It runs twice: with sync "none", so the disk's fsync time (shared,
// noisy) does not drown the hop, and with "always", the default. Results
// and their analysis are in docs/performance.md.
func BenchmarkHopMix(b *testing.B) {
	for _, sync := range []string{"none", "always"} {
		b.Run("sync="+sync, func(b *testing.B) { benchHopMix(b, sync) })
	}
}

func benchHopMix(b *testing.B, sync string) {
	mgr, err := pluginhost.NewManager(pluginhost.Options{ZhostPath: testbin.Zhost(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mgr.Close() })
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plug, err := mgr.OpenStorage(ctx, pluginhost.StorageSpec{Type: "filestorage", Name: "bench",
		Config: hcl.Values{"path": filepath.Join(dir, "plugin.fs"), "sync": sync}})
	if err != nil {
		b.Fatal(err)
	}
	inproc, err := filestorage.FromConfig(hcl.Values{"path": filepath.Join(dir, "inproc.fs"), "sync": sync}, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { inproc.Close() })

	rigs := map[string]*hopRig{"plugin": newHopRig(b, plug, 0), "in-process": newHopRig(b, inproc, 0)}
	// backend-miss: servers with their cache off over the same storages.
	nocache := map[string]*hopRig{"plugin": newHopRig(b, plug, -1), "in-process": newHopRig(b, inproc, -1)}
	stats := map[string]map[string]*hopStats{}
	for _, side := range []string{"plugin", "in-process"} {
		stats[side] = map[string]*hopStats{}
		for _, ph := range hopPhases {
			stats[side][ph] = &hopStats{}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		for _, side := range []string{"plugin", "in-process"} {
			r := rigs[side]
			for _, ph := range hopPhases {
				rr := r
				if ph == "backend-miss" {
					rr = nocache[side]
					rr.oids, rr.serial = r.oids, r.serial
				}
				stats[side][ph].add(rr.phase(b, ph))
			}
		}
	}
	b.StopTimer()
	for _, ph := range hopPhases {
		pl, in := stats["plugin"][ph], stats["in-process"][ph]
		b.ReportMetric(pl.perSec()/in.perSec(), ph+"-ratio")
		switch ph {
		case "commit", "miss", "backend-miss":
			b.ReportMetric(float64(pl.q(0.5).Microseconds()), ph+"-p50-µs")
			b.ReportMetric(float64(in.q(0.5).Microseconds()), ph+"-inproc-p50-µs")
		default:
			b.ReportMetric(pl.perSec(), ph+"-obj/s")
			b.ReportMetric(in.perSec(), ph+"-inproc-obj/s")
		}
	}
	if b.N > 0 {
		b.Logf("%s", hopTable(stats))
	}
}

func hopTable(stats map[string]map[string]*hopStats) string {
	s := "phase         plugin/s   in-process/s  ratio   plugin p50   in-process p50\n"
	for _, ph := range hopPhases {
		pl, in := stats["plugin"][ph], stats["in-process"][ph]
		s += fmt.Sprintf("%-12s %10.0f %12.0f %7.2f %10.1fµs %12.1fµs\n", ph, pl.perSec(), in.perSec(),
			pl.perSec()/in.perSec(), float64(pl.q(0.5).Nanoseconds())/1e3, float64(in.q(0.5).Nanoseconds())/1e3)
	}
	return s
}
