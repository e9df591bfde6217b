package sdk

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// A plugin that hangs (its process alive, a call never answered: a
// deadlocked backend, an fsync stuck on a dead disk) is not noticed by
// go-plugin, which only sees a process exit. The host's calls that carry
// no deadline of their own (the server's Vote, Finish and Abort, Undo,
// LastTid) would then wait forever, holding what their caller holds (a
// partition's commit lock). SetHangWatch bounds them: such a call with
// no answer within the hang timeout is reported to the host, which kills
// the process, and fails with ErrPluginUnavailable. Only those calls are
// watched, with one timer each: the hot reads and stores are not (they
// hold no lock and end with their caller's context), nor are calls that
// may legitimately run long (Open, Pack, Iterate).

// HangFunc is called, on a goroutine of its own, when a call has had no
// answer from the plugin for the hang timeout: op names the call
// ("abort"), after is the timeout. The host kills the plugin process.
type HangFunc func(op string, after time.Duration)

// SetHangWatch makes the calls the Client watches (see above) report
// hung to hung when they have no deadline of their own and no answer
// within timeout; the call then fails with ErrPluginUnavailable without
// waiting further. Call it before the Client is used; a timeout of 0 or
// a nil hung turns the watch off (the default).
func (c *Client) SetHangWatch(timeout time.Duration, hung HangFunc) {
	if timeout <= 0 || hung == nil {
		c.hangAfter, c.hung = 0, nil
		return
	}
	c.hangAfter, c.hung = timeout, hung
}

// hangGuard watches one call; the zero guard (a nil pointer) watches
// nothing.
type hangGuard struct {
	timer  *time.Timer
	cancel context.CancelFunc
	fired  atomic.Bool // the call was given up as hung
}

// watch returns the context to make call op with and its guard, whose
// end the caller calls once the call returned. A call whose ctx has a
// deadline, or made while the watch is off, is not watched.
func (c *Client) watch(ctx context.Context, op string) (context.Context, *hangGuard) {
	if c.hung == nil {
		return ctx, nil
	}
	if c.gaveUp.Load() {
		// A call already went unanswered for the hang timeout and the
		// process is being killed (one stuck in the kernel may outlive
		// SIGKILL for a while): fail at once rather than wait again,
		// so a commit lock is not held for a second timeout.
		g := &hangGuard{}
		ctx, g.cancel = context.WithCancel(ctx)
		g.fired.Store(true)
		g.cancel()
		return ctx, g
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, nil
	}
	g := &hangGuard{}
	ctx, g.cancel = context.WithCancel(ctx)
	after, hung := c.hangAfter, c.hung
	g.timer = time.AfterFunc(after, func() {
		g.fired.Store(true) // before the kill, which may end the call first
		c.gaveUp.Store(true)
		hung(op, after)
		// Whether or not the process is gone yet (one stuck in the
		// kernel may take its time), the caller stops waiting.
		g.cancel()
	})
	return ctx, g
}

// end stops the watch of a call that returned with err. It returns the
// error the call must report instead when the call was given up as hung
// (ErrPluginUnavailable naming the plugin, the call and the timeout),
// else nil. A call that succeeded reports its success even if the watch
// fired meanwhile.
func (g *hangGuard) end(c *Client, op string, err error) error {
	if g == nil {
		return nil
	}
	if g.timer != nil {
		g.timer.Stop()
	}
	g.cancel()
	if err == nil || !g.fired.Load() {
		return nil
	}
	return fmt.Errorf("plugin %q: %s: no answer within %s: the plugin is hung and was killed: %w", c.name, op, c.hangAfter, ErrPluginUnavailable)
}
