package session

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWebhookReceivesAddAndDeleteWithoutTheID(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", 400)
			return
		}
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	var calls eventLog
	c := newCluster(t, 1, Options{NotifyURL: hook.URL, OnEvent: calls.add})
	a := c.nodes[0].srv.URL
	br := newBrowser(t)
	br.set(a, "k", "v")
	id, key := br.cookie(a), br.key(a)
	if code, _ := br.do("POST", a, "/invalidate", nil); code != 200 {
		t.Fatal("invalidate")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[0].m.Close(ctx); err != nil { // drains the queue
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 {
		t.Fatalf("webhook got %d events: %v", len(bodies), bodies)
	}
	for i, want := range []string{"add/new", "delete/invalidated"} {
		if strings.Contains(bodies[i], id) {
			t.Fatalf("webhook event carries the browser id: %s", bodies[i])
		}
		var ev struct {
			Type, Reason, Key, Node, Container string
			Created                            time.Time
		}
		if err := json.Unmarshal([]byte(bodies[i]), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type+"/"+ev.Reason != want || ev.Key != key || ev.Node != "app1" || ev.Container != DefaultContainer || ev.Created.IsZero() {
			t.Fatalf("event %d: %+v, want %s for key %s", i, ev, want, key)
		}
	}
	// The Go callback gets the id too.
	evs := calls.all()
	if len(evs) != 2 || evs[0].ID != id || evs[1].ID != id {
		t.Fatalf("callback events %+v", evs)
	}
	if st := c.nodes[0].m.Stats(); st.WebhookSent != 2 || st.WebhookDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWebhookFailuresAreRetriedThenDropped(t *testing.T) {
	var hits atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "try again", http.StatusBadGateway)
			return
		}
		http.Error(w, "gone", http.StatusGone)
	}))
	t.Cleanup(hook.Close)
	o, err := Options{NotifyURL: hook.URL}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	n := newNotifier(&o)
	n.emit(Event{Type: EventAdd, Key: "k"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.close(ctx); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 3 || n.dropped.Load() != 1 || n.sent.Load() != 0 {
		t.Fatalf("hits %d dropped %d sent %d", hits.Load(), n.dropped.Load(), n.sent.Load())
	}
	// After close, events are dropped, not sent, and nothing panics.
	n.emit(Event{Type: EventDelete})
	if n.dropped.Load() != 2 {
		t.Fatal("event after close not counted as dropped")
	}
}

func TestCallbackPanicIsContained(t *testing.T) {
	o, err := Options{OnEvent: func(Event) { panic("operator bug") }}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	n := newNotifier(&o)
	n.emit(Event{Type: EventAdd}) // must not panic
	if err := n.close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCloseAbandonsSlowWebhook(t *testing.T) {
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hook.Close() })
	o, err := Options{NotifyURL: hook.URL}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	n := newNotifier(&o)
	n.emit(Event{Type: EventAdd})
	n.emit(Event{Type: EventAdd})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := n.close(ctx); err == nil {
		t.Fatal("close waited for a hanging endpoint")
	}
}

func TestSeparateAddAndDeleteWebhooks(t *testing.T) {
	var adds, dels atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		switch {
		case r.URL.Path == "/added" && ev.Type == EventAdd:
			adds.Add(1)
		case r.URL.Path == "/deleted" && ev.Type == EventDelete:
			dels.Add(1)
		default:
			http.Error(w, "wrong hook", 400)
		}
	}))
	t.Cleanup(hook.Close)
	o, err := Options{NotifyAddURL: hook.URL + "/added", NotifyDeleteURL: hook.URL + "/deleted"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	n := newNotifier(&o)
	n.emit(Event{Type: EventAdd})
	n.emit(Event{Type: EventDelete})
	n.emit(Event{Type: EventAdd})
	if err := n.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if adds.Load() != 2 || dels.Load() != 1 || n.dropped.Load() != 0 {
		t.Fatalf("adds %d dels %d dropped %d", adds.Load(), dels.Load(), n.dropped.Load())
	}
	// Only an add hook: deletes go nowhere and are not counted as drops.
	o, _ = Options{NotifyAddURL: hook.URL + "/added"}.withDefaults()
	n = newNotifier(&o)
	n.emit(Event{Type: EventDelete})
	if err := n.close(context.Background()); err != nil || n.dropped.Load() != 0 || n.sent.Load() != 0 {
		t.Fatalf("delete without a hook: %v dropped %d sent %d", err, n.dropped.Load(), n.sent.Load())
	}
}
