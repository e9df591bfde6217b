package plugintest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/filestorage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// callsSides are the ways BenchmarkHopCalls reaches filestorage: through
// a plugin process with each transport of the hot calls
// (sdk.EnvPluginCalls: unary gRPC calls, the Calls stream with one
// message per record, the Calls stream with packed records, the default)
// and in the server's process, the baseline.
var callsSides = []string{"unary", "stream", "packed", "in-process"}

// BenchmarkHopCalls is BenchmarkHopMix with the plugin side split by
// transport, all sides interleaved round by round in one run: it
// measures what the Calls stream and the packed records change on the
// issue 4 mix. Reported per phase and transport: the ratio to in process
// (throughput; 1.0 = the hop is free) and, for the latency phases, p50
// and p99.
func BenchmarkHopCalls(b *testing.B) {
	for _, sync := range []string{"none", "always"} {
		b.Run("sync="+sync, func(b *testing.B) { benchHopCalls(b, sync) })
	}
}

func benchHopCalls(b *testing.B, sync string) {
	dir := b.TempDir()
	rigs := map[string]*hopRig{}
	nocache := map[string]*hopRig{}
	for _, side := range callsSides {
		if side == "in-process" {
			st, err := filestorage.FromConfig(hcl.Values{"path": filepath.Join(dir, "inproc.fs"), "sync": sync}, hclog.NewNullLogger())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			rigs[side], nocache[side] = newHopRig(b, st, 0), newHopRig(b, st, -1)
			continue
		}
		// The host picks the transport when it connects to the plugin.
		b.Setenv(sdk.EnvPluginCalls, side)
		mgr, err := pluginhost.NewManager(pluginhost.Options{ZhostPath: testbin.Zhost(b)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { mgr.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := mgr.OpenStorage(ctx, pluginhost.StorageSpec{Type: "filestorage", Name: "bench",
			Config: hcl.Values{"path": filepath.Join(dir, side+".fs"), "sync": sync}})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		rigs[side], nocache[side] = newHopRig(b, st, 0), newHopRig(b, st, -1)
	}
	stats := map[string]map[string]*hopStats{}
	for _, side := range callsSides {
		stats[side] = map[string]*hopStats{}
		for _, ph := range hopPhases {
			stats[side][ph] = &hopStats{}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		for _, side := range callsSides {
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
	table := fmt.Sprintf("%-12s %-8s %10s %7s %10s %10s\n", "phase", "side", "ops/s", "ratio", "p50", "p99")
	for _, ph := range hopPhases {
		in := stats["in-process"][ph]
		for _, side := range callsSides {
			st := stats[side][ph]
			if side != "in-process" {
				b.ReportMetric(st.perSec()/in.perSec(), ph+"-"+side+"-ratio")
			}
			switch ph {
			case "commit", "miss", "backend-miss":
				b.ReportMetric(float64(st.q(0.5).Nanoseconds())/1e3, ph+"-"+side+"-p50-µs")
				b.ReportMetric(float64(st.q(0.99).Nanoseconds())/1e3, ph+"-"+side+"-p99-µs")
			}
			table += fmt.Sprintf("%-12s %-8s %10.0f %7.2f %8.1fµs %8.1fµs\n", ph, side, st.perSec(), st.perSec()/in.perSec(),
				float64(st.q(0.5).Nanoseconds())/1e3, float64(st.q(0.99).Nanoseconds())/1e3)
		}
	}
	b.ReportMetric(0, "ns/op")
	if b.N > 0 {
		b.Logf("\n%s", table)
	}
}
