package session

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// EventType says what happened to a session.
type EventType string

const (
	// EventAdd: a session was created (also the new id of a renewal).
	EventAdd EventType = "add"
	// EventDelete: a session was removed (also the old id of a renewal).
	EventDelete EventType = "delete"
)

// Reasons carried by events.
const (
	ReasonNew         = "new"         // add: first write of a new session
	ReasonRenewed     = "renewed"     // add/delete: id renewal
	ReasonInvalidated = "invalidated" // delete: the application invalidated it
	ReasonExpired     = "expired"     // delete: idle timeout or lifetime, removed by the sweeper
)

// Event describes one session added or deleted. It is what OnEvent
// receives and, as JSON, what the NotifyURL webhook receives.
type Event struct {
	Type   EventType `json:"type"`
	Reason string    `json:"reason"`
	// ID is the browser id. It is a credential, so it is never sent to
	// the webhook (json:"-"); Go callbacks get it.
	ID string `json:"-"`
	// Key is the non-secret handle of the id (see Key).
	Key string `json:"key"`
	// Created is when the session was created.
	Created time.Time `json:"created"`
	// LastAccess is the session's stored last access.
	LastAccess time.Time `json:"last_access"`
	// Time is when the event happened.
	Time time.Time `json:"time"`
	// Node is the node that made the change.
	Node string `json:"node,omitempty"`
	// Container is the container path.
	Container string `json:"container"`
}

// notifier delivers events to the Go callback (synchronously) and to the
// webhook (through a bounded queue drained by one goroutine, so a slow or
// dead endpoint never slows a request).
type notifier struct {
	callback func(Event)
	// urls maps each event type to the webhook that receives it.
	urls   map[EventType]string
	client *http.Client
	log    hclog.Logger

	// mu guards closed and sends on queue against close(queue).
	mu     sync.RWMutex
	closed bool
	queue  chan Event
	done   chan struct{}
	// dropped counts events not delivered to the webhook (queue full,
	// endpoint failing after retries).
	dropped atomic.Int64
	sent    atomic.Int64
	ctx     context.Context
	cancel  context.CancelFunc
}

// notifyQueue bounds the events waiting for the webhook.
const notifyQueue = 1024

func newNotifier(o *Options) *notifier {
	n := &notifier{callback: o.OnEvent, urls: map[EventType]string{}, client: o.HTTPClient, log: o.Logger.Named("notify")}
	for typ, u := range map[EventType]string{EventAdd: o.NotifyAddURL, EventDelete: o.NotifyDeleteURL} {
		if u == "" {
			u = o.NotifyURL
		}
		if u != "" {
			n.urls[typ] = u
		}
	}
	if len(n.urls) > 0 {
		n.queue = make(chan Event, notifyQueue)
		n.done = make(chan struct{})
		n.ctx, n.cancel = context.WithCancel(context.Background())
		go n.run()
	}
	return n
}

// emit delivers ev. Safe for concurrent use; never blocks on the webhook.
func (n *notifier) emit(ev Event) {
	if n.callback != nil {
		n.safeCallback(ev)
	}
	if n.urls[ev.Type] == "" {
		return
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		n.dropped.Add(1)
		return
	}
	select {
	case n.queue <- ev:
	default:
		n.dropped.Add(1)
		n.log.Warn("webhook queue full; event dropped", "type", ev.Type, "key", ev.Key)
	}
}

// safeCallback keeps a panicking operator callback from taking the request
// (or the sweeper) down with it.
func (n *notifier) safeCallback(ev Event) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("session event callback panicked", "type", ev.Type, "key", ev.Key, "panic", fmt.Sprint(r))
		}
	}()
	n.callback(ev)
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		select {
		case ev, ok := <-n.queue:
			if !ok {
				return
			}
			n.post(ev)
		case <-n.ctx.Done():
			return
		}
	}
}

// post sends one event, retrying a failed delivery a few times with a short
// backoff. Any 2xx answer is a delivery.
func (n *notifier) post(ev Event) {
	url := n.urls[ev.Type]
	body, err := json.Marshal(ev)
	if err != nil {
		n.dropped.Add(1)
		n.log.Error("encode session event", "error", err)
		return
	}
	const attempts = 3
	backoff := 100 * time.Millisecond
	for i := 1; ; i++ {
		err = n.postOnce(url, body)
		if err == nil {
			n.sent.Add(1)
			return
		}
		if i == attempts {
			break
		}
		select {
		case <-time.After(backoff):
			backoff *= 4
		case <-n.ctx.Done():
			n.dropped.Add(1)
			return
		}
	}
	n.dropped.Add(1)
	n.log.Warn("session webhook failed; event dropped", "url", url, "type", ev.Type, "key", ev.Key, "error", err)
}

func (n *notifier) postOnce(url string, body []byte) error {
	req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "zhost-session-notify")
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post %s: status %s", url, resp.Status)
	}
	return nil
}

// close stops taking events and waits, until ctx ends, for the queued ones
// to be delivered; then it abandons the rest.
func (n *notifier) close(ctx context.Context) error {
	if n.queue == nil {
		return nil
	}
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.queue)
	}
	n.mu.Unlock()
	select {
	case <-n.done:
		n.cancel() // release the delivery context
		return nil
	case <-ctx.Done():
		n.cancel()
		<-n.done
		return fmt.Errorf("deliver queued session events: %w", ctx.Err())
	}
}
