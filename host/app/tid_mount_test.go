package app

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTxTidCookieOnlyForMainWrites: a transaction whose op on a
// main-partition object changes nothing, and whose only write is under a
// mount (another partition, with its own tids), must not hand the
// browser that partition's tid as the main read-your-writes tid: the main
// partition may never reach it, and every later request of the browser
// would wait TidWait and fail with 503.
func TestTxTidCookieOnlyForMainWrites(t *testing.T) {
	n := newTestNode(t, func(o *Options) { o.TidWait = 300 * time.Millisecond })
	if r := n.do(t, "PUT", "/a", map[string]any{"x": 1}); r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	time.Sleep(5 * time.Millisecond) // the mount's commit gets a later tid
	r := n.do(t, "POST", "/_tx", TxRequest{Ops: []TxOp{
		{Op: "put", Path: "/a", Data: map[string]any{"x": 1}}, // unchanged
		{Op: "put", Path: "/session_data/b", Data: map[string]any{"y": 1}},
	}})
	if r.status != http.StatusOK {
		t.Fatalf("tx: %d %s", r.status, r.body)
	}
	var cookie string
	for _, c := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, DefaultTidCookie+"=") {
			cookie = strings.SplitN(strings.SplitN(c, ";", 2)[0], "=", 2)[1]
		}
	}
	if cookie == "" {
		return // no main tid promised: fine
	}
	if g := n.do(t, "GET", "/a", nil, "Cookie", DefaultTidCookie+"="+cookie); g.status != http.StatusOK {
		t.Fatalf("GET with the tid cookie the tx set (%s): %d %s", cookie, g.status, g.body)
	}
}
