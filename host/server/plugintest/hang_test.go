package plugintest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/testbin"
)

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestHungPluginThroughServer serves a storage whose plugin hangs (alive,
// never answering) in a call the server makes without a deadline: the
// Abort after a voted transaction's client disconnected, a Finish, a
// one-phase commit. The host kills the hung plugin after HangTimeout, the
// server's path gets its error and recovers by itself (the commit lock is
// released; an unknown outcome resets the clients), and another client's
// commit goes through once the plugin is restarted.
func TestHungPluginThroughServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs plugin subprocesses")
	}
	const hang = time.Second
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Info, Output: logWriter{t}})
	mgr, err := pluginhost.NewManager(pluginhost.Options{ZhostPath: testbin.Zhost(t), Logger: logger,
		HangTimeout: hang, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	if err := mgr.Add(pluginhost.Spec{Name: "hang", Path: testbin.Build(t, "", "./host/testdata/hangplugin", "zhost-plugin-hang")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := mgr.OpenStorage(ctx, pluginhost.StorageSpec{Plugin: "hang", Type: "hang", Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Options{
		Listen:             "127.0.0.1:0",
		Partitions:         map[string]server.Partition{"main": {Storage: st}},
		TransactionTimeout: time.Hour, // only the disconnect releases the lock
		Logger:             logger.Named("server"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	open := func(name string) *client.Client {
		t.Helper()
		c, err := client.Open(ctx, client.Options{Addr: srv.Addr().String(), Partition: "main", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	p, err := mgr.Plugin("hang")
	if err != nil {
		t.Fatal(err)
	}
	good := open("good")
	oids, err := good.NewOids(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	oid := oids[0]
	// commit commits a new object through c, in two phases or in one.
	commit := func(c *client.Client, desc string, onePhase bool) error {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		oids, err := c.NewOids(cctx, 1)
		if err != nil {
			return err
		}
		txn, err := c.Begin(cctx, storage.TxMeta{Description: desc})
		if err != nil {
			return err
		}
		defer txn.Abort(cctx)
		if err := txn.Store(cctx, storage.Record{Oid: oids[0], Data: []byte(desc)}); err != nil {
			return err
		}
		if onePhase {
			_, err = storage.CommitOnePhase(cctx, txn)
			return err
		}
		if err := txn.Vote(cctx); err != nil {
			return err
		}
		_, err = txn.Finish(cctx)
		return err
	}
	// commitAfter commits once the plugin serves again. A transaction
	// begun in the killed process (Begin needs no plugin call, so it may
	// have) fails with the plugin unavailable, as after any crash, and is
	// retried; a commit that waited for the commit lock until its own
	// deadline is a failure.
	commitAfter := func(what string, onePhase bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := commit(good, what, onePhase)
			if err == nil {
				return
			}
			if errors.Is(err, storage.ErrCommitLockTimeout) || !strings.Contains(err.Error(), "plugin unavailable") || time.Now().After(deadline) {
				t.Fatalf("commit %s: %v", what, err)
			}
			t.Logf("commit %s: %v (retried)", what, err)
			time.Sleep(50 * time.Millisecond)
		}
	}
	restarted := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for s := p.Status(); s.State != "running" || s.Restarts != n; s = p.Status() {
			if time.Now().After(deadline) {
				t.Fatalf("plugin not restarted: %+v", s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	gone := func(pid int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for testbin.Alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("hung plugin %d still alive", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// A voted transaction holds the partition's commit lock; its client
	// goes away and the server's Abort hangs in the plugin.
	pid := p.Status().Pid
	holder := open("holder")
	txn, err := holder.Begin(ctx, storage.TxMeta{Description: "hang:abort"})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(ctx, storage.Record{Oid: oid, Data: []byte("held")}); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	holder.Close()
	start := time.Now()
	commitAfter("after the lock holder disconnected and its abort hung", false)
	t.Logf("commit went through %s after the disconnect", time.Since(start).Round(time.Millisecond))
	gone(pid)
	restarted(1)

	// A Finish, then a one-phase commit, that hang: the committer gets an
	// error naming the plugin; the next commit goes through.
	for i, onePhase := range []bool{false, true} {
		pid := p.Status().Pid
		err := commit(good, "hang:finish", onePhase)
		if err == nil || !strings.Contains(err.Error(), `plugin "hang"`) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("commit hung in the plugin's finish (one phase %v): %v", onePhase, err)
		}
		t.Logf("hung finish (one phase %v): %v", onePhase, err)
		gone(pid)
		restarted(2 + i)
		commitAfter("after a hung finish", onePhase)
	}
}
