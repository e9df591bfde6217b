package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

// testOnePhaseCommit runs storage.CommitOnePhase (the backend's own
// OnePhaseTxn.Commit when it has one): a commit is visible at once with
// the tid returned; a conflicting one names every conflicting oid, leaves
// no trace and releases the commit lock; the transaction is over after
// either.
func testOnePhaseCommit(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid1 := h.tree(3)
	commitOne := func(recs ...storage.Record) (storage.Txn, storage.Tid, error) {
		t.Helper()
		txn, err := h.st.Begin(h.ctx, storage.TxMeta{User: "one-phase"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if err := txn.Store(h.ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
		defer cancel()
		tid, err := storage.CommitOnePhase(ctx, txn)
		return txn, tid, err
	}
	txn, tid2, err := commitOne(storage.Record{Oid: oids[0], Serial: tid1, Data: []byte("a2")})
	if err != nil {
		t.Fatalf("one-phase commit: %v", err)
	}
	if tid2 <= tid1 {
		t.Fatalf("one-phase tid %s not after %s", tid2, tid1)
	}
	if got := h.load(oids[0]); string(got.Data) != "a2" || got.Serial != tid2 {
		t.Fatalf("after one-phase commit load %q@%s, want a2@%s", got.Data, got.Serial, tid2)
	}
	if got := h.lastTid(); got != tid2 {
		t.Fatalf("LastTid %s, want %s", got, tid2)
	}
	if err := txn.Store(h.ctx, storage.Record{Oid: oids[1], Data: []byte("x")}); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("store after one-phase commit: %v, want ErrClosed", err)
	}
	if err := txn.Abort(h.ctx); err != nil {
		t.Fatalf("abort after one-phase commit: %v", err)
	}

	// Stale serials for 0 and 1 (1 is stale against itself: based on a
	// made-up serial), correct for 2: two conflicts reported at once.
	txn, _, err = commitOne(
		storage.Record{Oid: oids[0], Serial: tid1, Data: []byte("x")},
		storage.Record{Oid: oids[1], Serial: tid2, Data: []byte("x")},
		storage.Record{Oid: oids[2], Serial: tid1, Data: []byte("x")},
	)
	var ce *storage.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("one-phase commit with stale serials: %v, want a *ConflictError", err)
	}
	if !storage.IsVoteFailure(err) {
		t.Fatalf("IsVoteFailure(%v) = false", err)
	}
	if got, want := ce.Oids(), sortedOids([]storage.Oid{oids[0], oids[1]}); !slices.Equal(got, want) {
		t.Fatalf("conflict oids %v, want %v", got, want)
	}
	if err := txn.Abort(h.ctx); err != nil {
		t.Fatalf("abort after failed one-phase commit: %v", err)
	}
	if got := h.loadData(oids[2]); got != "obj 2 v0" {
		t.Fatalf("failed one-phase commit left data: %q", got)
	}
	if got := h.lastTid(); got != tid2 {
		t.Fatalf("LastTid %s after failed one-phase commit, want %s", got, tid2)
	}
	// The lock is free: the next commit goes through.
	if _, tid3, err := commitOne(storage.Record{Oid: oids[2], Serial: tid1, Data: []byte("c3")}); err != nil || tid3 <= tid2 {
		t.Fatalf("one-phase commit after a conflict: tid %s, %v", tid3, err)
	}
	if got := h.loadData(oids[2]); got != "c3" {
		t.Fatalf("load after one-phase commit: %q", got)
	}
}
