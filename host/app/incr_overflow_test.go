package app

import (
	"math"
	"net/http"
	"testing"
)

// TestIncrOverflowRefused: an incr that would take a counter past the
// int64 range must be refused, not wrap the stored value around.
func TestIncrOverflowRefused(t *testing.T) {
	n := newTestNode(t, nil)
	big, one := int64(math.MaxInt64), int64(1)
	if r := n.do(t, "POST", "/_tx", TxRequest{Ops: []TxOp{{Op: "incr", Path: "/c", By: &big}}}); r.status != http.StatusOK {
		t.Fatalf("incr: %d %s", r.status, r.body)
	}
	r := n.do(t, "POST", "/_tx", TxRequest{Ops: []TxOp{{Op: "incr", Path: "/c", By: &one}}})
	if r.status != http.StatusBadRequest && r.status != http.StatusConflict {
		t.Errorf("overflowing incr: %d %s", r.status, r.body)
	}
	var obj ObjectJSON
	g := n.do(t, "GET", "/c", nil)
	g.json(t, &obj)
	if obj.Value == nil || *obj.Value != math.MaxInt64 {
		t.Fatalf("counter after an overflowing incr: %s", g.body)
	}
}
