package server

import (
	"context"
	"sync"
)

// freeFrameSize is the largest request frame that is not counted against
// a session's in-flight byte budget: at most maxInFlight of them run at
// once (8 MiB), and control requests (Finish, Abort, Ping, small loads)
// must get through while large ones wait, or a voted transaction could
// not finish behind a full budget.
const freeFrameSize = 64 << 10

// budget bounds the bytes of request frames one session has being
// handled. Only the session's reader acquires; request goroutines
// release. Safe for concurrent use.
type budget struct {
	max int64

	mu   sync.Mutex
	used int64
	peak int64         // highest used so far, for tests and stats
	wake chan struct{} // closed (and replaced) by each release
}

func newBudget(max int64) *budget {
	return &budget{max: max, wake: make(chan struct{})}
}

// cost is what a frame of n bytes on the wire counts against the budget.
func (b *budget) cost(n int) int64 {
	if n <= freeFrameSize {
		return 0
	}
	return int64(n)
}

// acquire waits until n more bytes fit in the budget, or nothing is in
// flight (so a frame within MaxMessageSize is never refused), and takes
// them. It returns ctx's error if ctx ends first, having taken nothing;
// waited says whether it had to wait.
func (b *budget) acquire(ctx context.Context, n int64) (waited bool, err error) {
	if n <= 0 {
		return false, nil
	}
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.peak = max(b.peak, b.used)
			b.mu.Unlock()
			return waited, nil
		}
		wake := b.wake
		b.mu.Unlock()
		waited = true
		select {
		case <-wake:
		case <-ctx.Done():
			return waited, ctx.Err()
		}
	}
}

// release gives back n bytes taken by acquire.
func (b *budget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// stats returns the bytes in flight and the highest value seen.
func (b *budget) stats() (used, peak int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.peak
}
