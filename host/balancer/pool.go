package balancer

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Reasons a request found no backend. ServeHTTP maps them to 503.
var (
	// ErrNoBackend: every backend is down or was already tried for this
	// request.
	ErrNoBackend = errors.New("no healthy backend")
	// ErrQueueFull: every eligible backend is at its connection cap and
	// the queue of waiting requests is full.
	ErrQueueFull = errors.New("backend queue full")
	// ErrQueueTimeout: the request waited QueueTimeout for a backend slot.
	ErrQueueTimeout = errors.New("timed out waiting for a backend")
)

// backend is one app node and its health. Fields under mu belong to the
// pool's mutex.
type backend struct {
	name      string
	url       *url.URL
	healthURL string

	// Guarded by pool.mu.
	up         bool
	active     int
	okStreak   int
	failStreak int
	downAt     time.Time
	lastCheck  time.Time
	lastErr    string

	requests atomic.Uint64
	failures atomic.Uint64
}

// pool picks backends and enforces the per-backend connection cap with a
// bounded queue. All methods are safe for concurrent use.
type pool struct {
	log      hclog.Logger
	policy   Policy
	maxConns int
	maxQueue int
	rise     int
	fall     int
	// cooldown brings a passively downed backend back when active checks
	// are disabled; 0 when they are enabled.
	cooldown time.Duration

	mu       sync.Mutex
	backends []*backend
	next     int
	waiting  int
	// wake is closed (and replaced) whenever a slot frees or a backend's
	// health changes, so that queued requests look again.
	wake chan struct{}
}

func newPool(log hclog.Logger, policy Policy, maxConns, maxQueue, rise, fall int, cooldown time.Duration, bes []*backend) *pool {
	for _, b := range bes {
		b.up = true
	}
	return &pool{
		log: log, policy: policy, maxConns: maxConns, maxQueue: maxQueue,
		rise: rise, fall: fall, cooldown: cooldown,
		backends: bes, wake: make(chan struct{}),
	}
}

// broadcastLocked wakes every queued request. Caller holds p.mu.
func (p *pool) broadcastLocked() {
	if p.waiting > 0 {
		close(p.wake)
		p.wake = make(chan struct{})
	}
}

// pickLocked returns the backend the policy chooses among the up backends
// not in tried and below the cap, and whether any backend was eligible at
// all (up and not tried) regardless of the cap. Caller holds p.mu.
func (p *pool) pickLocked(tried []*backend, now time.Time) (chosen *backend, anyEligible bool) {
	n := len(p.backends)
	start := p.next
	for i := range n {
		b := p.backends[(start+i)%n]
		if !b.up && p.cooldown > 0 && now.Sub(b.downAt) >= p.cooldown {
			b.up, b.failStreak = true, 0
			p.log.Info("backend up after cooldown", "backend", b.name)
		}
		if !b.up || slices.Contains(tried, b) {
			continue
		}
		anyEligible = true
		if p.maxConns > 0 && b.active >= p.maxConns {
			continue
		}
		if chosen == nil {
			chosen = b
			if p.policy == PolicyRoundRobin {
				break
			}
		} else if b.active < chosen.active {
			chosen = b
		}
	}
	if chosen != nil {
		p.next = (slices.Index(p.backends, chosen) + 1) % n
		chosen.active++
	}
	return chosen, anyEligible
}

// acquire returns a backend with a slot taken for the caller, who must
// release it. It waits up to timeout in the queue when every eligible
// backend is at its cap. Errors: ErrNoBackend, ErrQueueFull,
// ErrQueueTimeout, or ctx's error.
func (p *pool) acquire(ctx context.Context, tried []*backend, timeout time.Duration) (*backend, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	p.mu.Lock()
	queued := false
	for {
		b, any := p.pickLocked(tried, time.Now())
		if b != nil || !any {
			if queued {
				p.waiting--
			}
			p.mu.Unlock()
			if b == nil {
				return nil, ErrNoBackend
			}
			return b, nil
		}
		if !queued {
			if p.waiting >= p.maxQueue {
				p.mu.Unlock()
				return nil, ErrQueueFull
			}
			p.waiting++
			queued = true
			timer = time.NewTimer(timeout)
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-timer.C:
			p.mu.Lock()
			p.waiting--
			p.mu.Unlock()
			return nil, ErrQueueTimeout
		case <-ctx.Done():
			p.mu.Lock()
			p.waiting--
			p.mu.Unlock()
			return nil, ctx.Err()
		}
		p.mu.Lock()
	}
}

// release gives back the slot acquire took.
func (p *pool) release(b *backend) {
	p.mu.Lock()
	b.active--
	p.broadcastLocked()
	p.mu.Unlock()
}

// passiveFailure takes b down at once after a connection error.
func (p *pool) passiveFailure(b *backend, err error) {
	b.failures.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	b.lastErr = err.Error()
	b.okStreak = 0
	b.failStreak = max(b.failStreak, p.fall)
	if b.up {
		b.up = false
		b.downAt = time.Now()
		p.log.Warn("backend down", "backend", b.name, "reason", "passive", "error", err)
		p.broadcastLocked()
	}
}

// checked records the result of one active check and applies rise/fall.
func (p *pool) checked(b *backend, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.lastCheck = time.Now()
	if err != nil {
		b.lastErr = err.Error()
		b.okStreak = 0
		b.failStreak++
		if b.up && b.failStreak >= p.fall {
			b.up = false
			b.downAt = b.lastCheck
			p.log.Warn("backend down", "backend", b.name, "reason", "health check", "error", err, "failures", b.failStreak)
			p.broadcastLocked()
		}
		return
	}
	b.failStreak = 0
	b.okStreak++
	if !b.up && b.okStreak >= p.rise {
		b.up = true
		b.lastErr = ""
		p.log.Info("backend up", "backend", b.name, "successes", b.okStreak)
		p.broadcastLocked()
	}
}

// snapshot copies the backends' state for Status.
func (p *pool) snapshot() ([]BackendStatus, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]BackendStatus, len(p.backends))
	for i, b := range p.backends {
		out[i] = BackendStatus{
			Name: b.name, URL: b.url.String(), Up: b.up, Active: b.active,
			Requests: b.requests.Load(), Failures: b.failures.Load(),
			LastCheck: b.lastCheck, LastError: b.lastErr,
		}
	}
	return out, p.waiting
}
