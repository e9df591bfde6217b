package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/sdk"
)

func hangPlugin(t testing.TB) string {
	return testbin.Build(t, "", "./host/testdata/hangplugin", "zhost-plugin-hang")
}

// openHangStorage starts the hang test plugin under a manager with opts
// and opens its storage.
func openHangStorage(t *testing.T, ctx context.Context, opts Options) (*Manager, storage.Storage, *Plugin, *syncBuffer) {
	t.Helper()
	m, logs := newManager(t, opts)
	if err := m.Add(Spec{Name: "hang", Path: hangPlugin(t), Where: "cluster.hcl:3"}); err != nil {
		t.Fatal(err)
	}
	st, err := m.OpenStorage(ctx, StorageSpec{Plugin: "hang", Type: "hang", Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := m.Plugin("hang")
	return m, st, p, logs
}

// hungCall runs call in a goroutine and returns its error, failing the
// test if it takes longer than within.
func hungCall(t *testing.T, what string, within time.Duration, call func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- call() }()
	select {
	case err := <-errc:
		t.Logf("%s returned after %s: %v", what, time.Since(start).Round(time.Millisecond), err)
		return err
	case <-time.After(within):
		t.Fatalf("%s hangs: no answer after %s", what, within)
		return nil
	}
}

// TestHungPlugin has the plugin hang (alive, never answering) in a call
// that has no deadline of its own: after HangTimeout the host kills the
// process, the call fails with ErrPluginUnavailable naming the plugin,
// and the crash path runs (restart with backoff, counted as a crash,
// failed after MaxCrashes). A call with a deadline of its own is left to
// its deadline.
func TestHungPlugin(t *testing.T) {
	t.Parallel()
	const hang = 500 * time.Millisecond
	ctx := testCtx(t)
	m, st, p, logs := openHangStorage(t, ctx, Options{HangTimeout: hang, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxCrashes: 3})
	begin := func(hangIn string) storage.Txn {
		t.Helper()
		txn, err := st.Begin(ctx, storage.TxMeta{Description: hangIn})
		if err != nil {
			t.Fatal(err)
		}
		oids, err := st.NewOids(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.Store(ctx, storage.Record{Oid: oids[0], Data: []byte(hangIn)}); err != nil {
			t.Fatal(err)
		}
		return txn
	}

	// A call with a deadline of its own ends at it; the plugin lives.
	pid := pidOf(t, m, "hang")
	txn := begin("hang:vote")
	err := hungCall(t, "vote with a deadline", 10*time.Second, func() error {
		vctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		return txn.Vote(vctx)
	})
	if !errors.Is(err, storage.ErrCommitLockTimeout) {
		t.Fatalf("vote with a deadline: %v", err)
	}
	time.Sleep(2 * hang)
	if s := p.Status(); s.State != "running" || s.Pid != pid || s.Restarts != 0 {
		t.Fatalf("a call with its own deadline got the plugin killed: %+v", s)
	}
	if _, err := storageCommit(ctx, st, []byte("before")); err != nil {
		t.Fatalf("commit after the vote's deadline: %v", err)
	}

	// Calls without a deadline: the server's Abort after a disconnect,
	// its Finish, its Vote under the partition's commit lock.
	for i, op := range []string{"abort", "finish", "vote"} {
		pid := pidOf(t, m, "hang")
		txn := begin("hang:" + op)
		bg := context.Background()
		if op != "vote" {
			if err := txn.Vote(ctx); err != nil {
				t.Fatal(err)
			}
		}
		call := map[string]func() error{
			"abort":  func() error { return txn.Abort(bg) },
			"finish": func() error { _, err := txn.Finish(bg); return err },
			"vote":   func() error { return txn.Vote(bg) },
		}[op]
		start := time.Now()
		err := hungCall(t, op, hang+10*time.Second, call)
		if d := time.Since(start); d < hang {
			t.Fatalf("%s failed after %s, before the hang timeout: %v", op, d, err)
		}
		if !errors.Is(err, sdk.ErrPluginUnavailable) || !strings.Contains(err.Error(), `plugin "hang"`) || !strings.Contains(err.Error(), op) {
			t.Fatalf("%s of a hung plugin: %v", op, err)
		}
		waitFor(t, 5*time.Second, fmt.Sprintf("hung plugin %d to be gone", pid), func() bool { return !testbin.Alive(pid) })
		want := fmt.Sprintf("plugin hung: no answer to %s in %s; killing it", op, hang)
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
		_ = txn.Abort(ctx)
		waitFor(t, 5*time.Second, "the crash logged with the hang as its reason", func() bool {
			// The last one marks the plugin failed, the hang as the last error.
			return strings.Contains(logs.String(), "reason=\"hung: no answer to "+op) ||
				i == 2 && strings.Contains(logs.String(), "marked failed and not restarted") && strings.Contains(logs.String(), "hung: no answer to "+op+" in")
		})
		if i == 2 {
			break
		}
		waitFor(t, 10*time.Second, "the restart", func() bool { s := p.Status(); return s.State == "running" && s.Restarts == i+1 })
		if _, err := storageCommit(ctx, st, []byte("after "+op)); err != nil {
			t.Fatalf("commit after the restart: %v", err)
		}
	}
	// Three hangs in a row, each counted as a crash: failed.
	waitFor(t, 5*time.Second, "failed", func() bool { return p.Status().State == "failed" })
	if _, err := st.Load(ctx, storage.RootOid); !errors.Is(err, ErrFailed) {
		t.Fatalf("load on a plugin failed after hanging: %v", err)
	}
}

// TestHungPluginNotStable: a plugin that hangs in every commit is marked
// failed after MaxCrashes hangs in a row even though each hang kept it
// "up" for the hang timeout, at least StableAfter (with the defaults,
// both 1m): the time it spent not answering is not stable uptime, so the
// crash count is not reset and it is not restarted forever.
func TestHungPluginNotStable(t *testing.T) {
	t.Parallel()
	const hang = 400 * time.Millisecond
	ctx := testCtx(t)
	m, st, p, logs := openHangStorage(t, ctx, Options{HangTimeout: hang, StableAfter: hang / 2, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxCrashes: 2})
	for i := range 2 {
		waitFor(t, 10*time.Second, "running", func() bool { s := p.Status(); return s.State == "running" && s.Restarts == i })
		pid := pidOf(t, m, "hang")
		txn, err := st.Begin(ctx, storage.TxMeta{Description: "hang:vote"})
		if err != nil {
			t.Fatal(err)
		}
		err = hungCall(t, "vote", hang+10*time.Second, func() error { return txn.Vote(context.Background()) })
		if !errors.Is(err, sdk.ErrPluginUnavailable) {
			t.Fatalf("vote %d: %v", i, err)
		}
		_ = txn.Abort(ctx)
		waitFor(t, 5*time.Second, "hung plugin gone", func() bool { return !testbin.Alive(pid) })
	}
	waitFor(t, 5*time.Second, "failed after 2 hangs in a row", func() bool { return p.Status().State == "failed" })
	if !strings.Contains(logs.String(), "marked failed") {
		t.Fatalf("log lacks the failure:\n%s", logs)
	}
}
