package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

// TestRegressionTxSerialPerPartition: a /_tx that writes the main
// partition and a mounted one must report, for each op, the serial its
// object really has (its own partition's tid), so that the serial works
// as an If-Match. It used to report the main partition's tid for every
// op, and an If-Match with the serial the transaction answered got 412.
func TestRegressionTxSerialPerPartition(t *testing.T) {
	n := newTestNode(t, nil)
	// Give the two partitions different tid histories.
	if r := n.do(t, "PUT", "/session_data/b", map[string]any{"y": 0}); r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	time.Sleep(2 * time.Millisecond)
	r := n.do(t, "POST", "/_tx", TxRequest{Ops: []TxOp{
		{Op: "put", Path: "/a", Data: map[string]any{"x": 1}},
		{Op: "put", Path: "/session_data/b", Data: map[string]any{"y": 1}},
		{Op: "incr", Path: "/session_data/n"},
	}})
	if r.status != http.StatusOK {
		t.Fatalf("tx: %d %s", r.status, r.body)
	}
	var resp TxResponse
	r.json(t, &resp)
	for _, res := range resp.Results {
		g := n.do(t, "GET", res.Path, nil)
		if g.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", res.Path, g.status, g.body)
		}
		if want := etag(mustTid(t, res.Serial)); g.header.Get("ETag") != want {
			t.Errorf("%s: the tx answered serial %s, GET's ETag is %s", res.Path, res.Serial, g.header.Get("ETag"))
		}
	}
	// The answered serial works as a precondition.
	b := resp.Results[1]
	if p := n.do(t, "PUT", b.Path, map[string]any{"y": 2}, "If-Match", `"`+b.Serial+`"`); p.status != http.StatusOK {
		t.Fatalf("PUT If-Match the serial /_tx answered: %d %s", p.status, p.body)
	}
}

func mustTid(t *testing.T, s string) (tid storage.Tid) {
	t.Helper()
	v, err := parseTid(s)
	if err != nil {
		t.Fatalf("serial %q: %v", s, err)
	}
	return v
}
