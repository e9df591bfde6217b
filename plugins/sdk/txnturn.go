package sdk

import (
	"context"
	"slices"
	"sync"

	"github.com/zhostdb/zhost/host/storage"
)

// The storage contract lets a backend's Txn assume one goroutine at a
// time. The host keeps to that, but its calls reach the plugin each on a
// goroutine of its own (a unary RPC's, a Calls stream call's), and when
// the host's caller gives up on a call (its context ended) the host's
// Abort can arrive while that call still runs in the backend: a Vote
// waiting for the commit lock, a slow Store. So every call into a
// backend Txn takes the transaction's turn: calls run one at a time, in
// the order they took a place in the queue, and an Abort first cancels
// the call running (and makes the queued ones return without reaching
// the backend), then waits for its turn.

// openTxn is a transaction the host holds an id (or key) of.
type openTxn struct {
	handle uint64
	key    uint64 // the host's key, 0 if none
	txn    storage.Txn

	// ended: the backend transaction was finished or aborted, so an
	// Abort has nothing left to do. Only the turn's holder touches it.
	ended bool

	mu      sync.Mutex
	busy    bool            // a call holds the turn
	waiters []chan struct{} // calls waiting for it, first come first; closed to hand it over
	// cancel is the running call's, for an Abort to cancel; nil when no
	// call runs or it must not be cut short (Finish).
	cancel context.CancelFunc
	// over says why no call but the pending Abort may reach the backend
	// any more (the host aborted the transaction, or closed its
	// storage); nil while the transaction is open.
	over error
}

// ticket is a place in a transaction's queue, taken as a call arrives.
// The zero ticket is "not taken yet"; a taken one with no transaction
// names a transaction that was over when the call arrived.
type ticket struct {
	taken bool
	t     *openTxn
	ch    chan struct{} // nil: the turn was free and is held
	// cancel, if set, cancels the call's own context (a Calls stream
	// call has one): start uses it rather than deriving a context.
	cancel context.CancelFunc
}

// reserve takes a place in the queue without waiting.
func (t *openTxn) reserve() ticket {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.busy {
		t.busy = true
		return ticket{taken: true, t: t}
	}
	ch := make(chan struct{})
	t.waiters = append(t.waiters, ch)
	return ticket{taken: true, t: t, ch: ch}
}

// await waits for tk's turn. If ctx ends first it gives up its place and
// returns ctx's error; the turn is then not held.
func (t *openTxn) await(ctx context.Context, tk ticket) error {
	if tk.ch == nil {
		return nil
	}
	select {
	case <-tk.ch:
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	if i := slices.Index(t.waiters, tk.ch); i >= 0 {
		t.waiters = slices.Delete(t.waiters, i, i+1)
		t.mu.Unlock()
		return ctx.Err()
	}
	t.mu.Unlock()
	// The turn was handed over as ctx ended: pass it on.
	t.release()
	return ctx.Err()
}

// release ends the holder's turn, handing it to the first waiter.
func (t *openTxn) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cancel = nil
	if len(t.waiters) == 0 {
		t.busy = false
		return
	}
	ch := t.waiters[0]
	t.waiters = slices.Delete(t.waiters, 0, 1)
	close(ch)
}

// start begins the holder's call: it returns the context to call the
// backend with, which an Abort cancels when cancelable, and the function
// to call when the backend returned; or the reason the transaction is
// over, and the call must not reach the backend. own, if set, cancels
// ctx itself.
func (t *openTxn) start(ctx context.Context, cancelable bool, own context.CancelFunc) (context.Context, context.CancelFunc, error) {
	cancel := context.CancelFunc(func() {})
	switch {
	case cancelable && own != nil:
		cancel = own
	case cancelable:
		ctx, cancel = context.WithCancel(ctx)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over != nil {
		cancel()
		return nil, nil, t.over
	}
	if cancelable {
		t.cancel = cancel
	}
	return ctx, cancel, nil
}

// interrupt marks the transaction over for why and cancels the call
// running in it. Calls that come after it do not reach the backend.
func (t *openTxn) interrupt(why error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over == nil {
		t.over = why
	}
	if t.cancel != nil {
		t.cancel()
	}
}

// holdTurns takes the turn of each transaction of ts, which were
// interrupted (so a call running in them returns promptly), waiting
// until ctx ends at most, and returns the function that releases those
// it got. A storage's Close runs between the two: it aborts its open
// transactions, which must not happen beside a call of one of them.
func holdTurns(ctx context.Context, ts []*openTxn) (release func()) {
	tks := make([]ticket, len(ts))
	for i, t := range ts {
		tks[i] = t.reserve()
	}
	held := make([]*openTxn, 0, len(ts))
	for i, t := range ts {
		if t.await(ctx, tks[i]) == nil {
			held = append(held, t)
		}
	}
	return func() {
		for _, t := range held {
			t.release()
		}
	}
}

// overErr returns why the transaction is over, nil while it is open.
func (t *openTxn) overErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.over
}

// abort aborts the backend transaction, once; the caller holds the turn.
func (t *openTxn) abort(ctx context.Context) error {
	if t.ended {
		return nil
	}
	t.ended = true
	return t.txn.Abort(ctx)
}
