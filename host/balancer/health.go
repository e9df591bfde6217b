package balancer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealthChecks checks b every interval until ctx ends. The first check
// runs at once so that a node that is down at start is noticed within
// Fall checks.
func (bl *Balancer) runHealthChecks(ctx context.Context, b *backend) {
	hc := bl.opts.HealthCheck
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	for {
		err := bl.check(ctx, b)
		if ctx.Err() != nil {
			return
		}
		bl.pool.checked(b, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check runs one GET of the health path. A 2xx answer within the timeout
// is healthy.
func (bl *Balancer) check(ctx context.Context, b *backend) error {
	ctx, cancel := context.WithTimeout(ctx, bl.opts.HealthCheck.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.healthURL, nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", b.healthURL, err)
	}
	req.Header.Set("User-Agent", "zhost-balancer-health/1")
	resp, err := bl.transport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", b.healthURL, err)
	}
	// Drain a little so the connection can be reused; a huge body is not
	// the health check's business.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check %s: status %d", b.healthURL, resp.StatusCode)
	}
	return nil
}
