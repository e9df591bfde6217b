package zhostcmd

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/internal/testbin"
)

// TestBench runs `zhost bench -json` with two worker processes (real
// re-executed zhost binaries) for two rounds against an in-process
// server, and checks every phase reported sensible figures for each round
// and the objects of every round really exist.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the zhost binary")
	}
	exe := testbin.Zhost(t)
	st := memstorage.New(memstorage.Options{})
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Options{Listen: "127.0.0.1:0", Partitions: map[string]server.Partition{"main": {Storage: st}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	code, out, errOut := runCmd(t, "bench", "-server", srv.Addr().String(), "-objects", "50", "-size", "100",
		"-concurrency", "2", "-commits", "30", "-misses", "40", "-rounds", "2", "-warmup", "1", "-busy-poll", "50us", "-json", "-exe", exe)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var res map[string]PhaseResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bad json %q: %v", out, err)
	}
	want := map[string]int{"add": 100, "update": 100, "cold": 100, "warm": 100, "hot": 1000, "commit": 60, "miss": 80}
	for phase, n := range want {
		r, ok := res[phase]
		if !ok || r.Count != n || r.ObjectsPerSec <= 0 {
			t.Errorf("%s: %+v, want count %d and a rate", phase, r, n)
		}
		if len(r.Rounds) != 2 || r.ObjectsPerSec < min(r.Rounds[0], r.Rounds[1]) || r.ObjectsPerSec > max(r.Rounds[0], r.Rounds[1]) {
			t.Errorf("%s: rate %v is not the median of its rounds %v", phase, r.ObjectsPerSec, r.Rounds)
		}
	}
	for _, phase := range []string{"commit", "miss"} {
		if r := res[phase]; r.P50Ms <= 0 || r.P99Ms < r.P50Ms {
			t.Errorf("%s latencies: %+v", phase, r)
		}
	}
	// 2 workers x 3 rounds (the warm-up round does the same work, only
	// its figures are dropped) x (50 objects + a container) exist,
	// reachable from the root.
	root, err := st.Load(ctx, storage.RootOid)
	if err != nil || len(root.Refs) != 6 {
		t.Fatalf("root after bench: %+v, %v", root, err)
	}
	for _, c := range root.Refs {
		cont, err := st.Load(ctx, c)
		if err != nil || len(cont.Refs) != 50 {
			t.Fatalf("container %s: %d refs, %v", c, len(cont.Refs), err)
		}
		for _, o := range cont.Refs {
			r, err := st.Load(ctx, o)
			if err != nil || len(r.Data) != 100 {
				t.Fatalf("object %s: %v", o, err)
			}
		}
	}
}

func TestBenchUsage(t *testing.T) {
	if code, _, _ := runCmd(t, "bench"); code != ExitUsage {
		t.Fatalf("no -server or -config: exit %d", code)
	}
	if code, _, _ := runCmd(t, "bench", "-server", "x:1", "-config", "y"); code != ExitUsage {
		t.Fatalf("both: exit %d", code)
	}
	if code, _, _ := runCmd(t, "bench", "-server", "x:1", "-objects", "0"); code != ExitUsage {
		t.Fatalf("zero objects: exit %d", code)
	}
	if code, _, _ := runCmd(t, "bench", "-server", "x:1", "-rounds", "0"); code != ExitUsage {
		t.Fatalf("zero rounds: exit %d", code)
	}
	if code, _, _ := runCmd(t, "bench", "-server", "x:1", "-warmup", "-1"); code != ExitUsage {
		t.Fatalf("negative warm-up: exit %d", code)
	}
	if code, _, _ := runCmd(t, "bench", "-server", "x:1", "-busy-poll", "5ms"); code != ExitUsage {
		t.Fatalf("busy-poll past 1ms: exit %d", code)
	}
}
