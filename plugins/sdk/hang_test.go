package sdk

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestHangWatchFailsLaterCallsAtOnce: once a watched call has gone
// unanswered for the hang timeout (the host is killing the process),
// later watched calls on the same Client fail at once with
// ErrPluginUnavailable instead of waiting out another timeout (a plugin
// stuck in the kernel may outlive SIGKILL for a while, and the server's
// Abort after a hung Vote would hold the commit lock twice as long),
// and the host is told only once.
func TestHangWatchFailsLaterCallsAtOnce(t *testing.T) {
	c := &Client{name: "p"}
	var reports atomic.Int32
	c.SetHangWatch(50*time.Millisecond, func(string, time.Duration) { reports.Add(1) })

	// A call without a deadline whose answer never comes.
	ctx, g := c.watch(context.Background(), "vote")
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not give up the call after its timeout")
	}
	if err := g.end(c, "vote", ctx.Err()); !errors.Is(err, ErrPluginUnavailable) {
		t.Fatalf("hung vote = %v, want ErrPluginUnavailable", err)
	}

	// The next watched call, with or without a deadline of its own.
	for _, mk := range []func() (context.Context, context.CancelFunc){
		func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
		func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Hour)
		},
	} {
		parent, cancel := mk()
		start := time.Now()
		ctx, g := c.watch(parent, "abort")
		if ctx.Err() == nil {
			t.Fatal("a watched call after a hang was let through to wait again")
		}
		if err := g.end(c, "abort", ctx.Err()); !errors.Is(err, ErrPluginUnavailable) {
			t.Fatalf("abort after a hang = %v, want ErrPluginUnavailable", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("abort after a hang took %s", d)
		}
		cancel()
	}
	if n := reports.Load(); n != 1 {
		t.Fatalf("the host was told of %d hangs, want 1", n)
	}

	// A call that succeeded is reported as such, even then.
	ctx, g = c.watch(context.Background(), "finish")
	if err := g.end(c, "finish", nil); err != nil {
		t.Fatalf("a successful call after a hang = %v", err)
	}
	_ = ctx
}
