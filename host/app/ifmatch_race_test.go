package app

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/zhostdb/zhost/host/storage"
)

// TestDeleteIfMatchRacesPut: a DELETE with If-Match must not remove an
// object that a concurrent PUT changed after the DELETE checked the
// serial; the PUT was acknowledged and would be lost.
func TestDeleteIfMatchRacesPut(t *testing.T) {
	n := newTestNode(t, nil)
	ctx := context.Background()
	r := n.do(t, "PUT", "/d", map[string]any{"v": 1})
	if r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	et := r.header.Get("ETag")

	tx, err := n.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	if _, err := deleteAt(ctx, tx, "/d", et); err != nil {
		t.Fatalf("deleteAt: %v", err)
	}
	// A concurrent PUT at the same ETag commits first.
	if r := n.do(t, "PUT", "/d", map[string]any{"v": 2}, "If-Match", et); r.status != http.StatusOK {
		t.Fatalf("concurrent PUT: %d %s", r.status, r.body)
	}
	if _, err := tx.Commit(ctx); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("delete commit after a concurrent change: err %v, want a conflict", err)
	}
	if r := n.do(t, "GET", "/d", nil); r.status != http.StatusOK {
		t.Fatalf("acknowledged PUT lost: GET %d %s", r.status, r.body)
	}
	// Through HTTP, the stale DELETE is refused.
	if r := n.do(t, "DELETE", "/d", nil, "If-Match", et); r.status != http.StatusPreconditionFailed {
		t.Fatalf("stale DELETE: %d %s", r.status, r.body)
	}
}

// TestIncrIfMatchRacesIncr: an incr with if_match is a compare-and-set;
// a concurrent increment must make it fail, not merge into it.
func TestIncrIfMatchRacesIncr(t *testing.T) {
	n := newTestNode(t, nil)
	ctx := context.Background()
	one := int64(1)
	var resp TxResponse
	r := n.do(t, "POST", "/_tx", TxRequest{Ops: []TxOp{{Op: "incr", Path: "/c", By: &one}}})
	if r.status != http.StatusOK {
		t.Fatalf("incr: %d %s", r.status, r.body)
	}
	r.json(t, &resp)
	serial := resp.Results[0].Serial

	tx, err := n.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	if _, _, err := applyOp(ctx, tx, TxOp{Op: "incr", Path: "/c", By: &one, IfMatch: serial}); err != nil {
		t.Fatalf("applyOp: %v", err)
	}
	if r := n.do(t, "POST", "/_tx", TxRequest{Ops: []TxOp{{Op: "incr", Path: "/c", By: &one}}}); r.status != http.StatusOK {
		t.Fatalf("concurrent incr: %d %s", r.status, r.body)
	}
	if _, err := tx.Commit(ctx); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("incr if_match %s after a concurrent incr: err %v, want a conflict", serial, err)
	}
}
