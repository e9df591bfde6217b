package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

func enc(t *testing.T, v any) []byte {
	t.Helper()
	b, err := encodeValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordMergeKeyLevel(t *testing.T) {
	old := &Record{Created: 1, LastAccess: 10, Data: map[string][]byte{
		"a": enc(t, "a0"), "b": enc(t, "b0"), "gone-mine": enc(t, 1), "gone-theirs": enc(t, 2), "same": enc(t, "s0"),
	}}
	committed := &Record{Created: 1, LastAccess: 30, Data: map[string][]byte{
		"a": enc(t, "a-theirs"), "b": enc(t, "b0"), "gone-mine": enc(t, 1), "same": enc(t, "s-theirs"), "new-theirs": enc(t, 3),
	}}
	mine := &Record{Created: 1, LastAccess: 20, Data: map[string][]byte{
		"a": enc(t, "a0"), "b": enc(t, "b-mine"), "gone-theirs": enc(t, 2), "same": enc(t, "s-mine"), "new-mine": enc(t, 4),
	}}
	got, err := mine.Merge(old, committed)
	if err != nil {
		t.Fatal(err)
	}
	r := got.(*Record)
	want := map[string]any{
		"a": "a-theirs", "b": "b-mine", "same": "s-mine", "new-theirs": int64(3), "new-mine": int64(4),
	}
	if len(r.Data) != len(want) {
		t.Fatalf("merged keys %v", keys(r.Data))
	}
	for k, w := range want {
		var v any
		if err := decodeValue(r.Data[k], &v); err != nil || v != w {
			t.Errorf("%s = %v (%v), want %v", k, v, err, w)
		}
	}
	if r.LastAccess != 30 || r.Created != 1 {
		t.Errorf("times %d %d", r.Created, r.LastAccess)
	}
	// Inputs untouched.
	if len(committed.Data) != 5 || len(old.Data) != 5 || len(mine.Data) != 5 {
		t.Error("merge changed its inputs")
	}
	// A session created on both sides (old nil) merges too.
	if _, err := mine.Merge(nil, committed); err != nil {
		t.Fatal(err)
	}
}

func TestRecordMergeRefusesDeleted(t *testing.T) {
	old := &Record{LastAccess: 1}
	for _, tc := range []struct{ mine, committed *Record }{
		{&Record{LastAccess: 2, Deleted: true}, &Record{LastAccess: 3}},
		{&Record{LastAccess: 2}, &Record{LastAccess: 3, Deleted: true}},
	} {
		if _, err := tc.mine.Merge(old, tc.committed); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("merge with a deletion: %v", err)
		}
	}
	if _, err := (&Record{}).Merge(old, db.NewCounter(1)); !errors.Is(err, storage.ErrConflict) {
		t.Fatal("merge with another type")
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDeletionConflictsWithConcurrentWriters drives two real transactions
// over two nodes by hand: both delete the same expired session (two
// sweepers without the lease), or one deletes while the other saves the
// session. The second to commit must conflict, so the count stays exact
// and no change lands on a deleted record unnoticed.
func TestDeletionConflictsWithConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 2, Options{Timeout: time.Minute, Refresh: 10 * time.Second})
	br := newBrowser(t)
	br.set(c.nodes[0].srv.URL, "k", "v")
	key := br.key(c.nodes[0].srv.URL)
	m1, m2 := c.nodes[0].m, c.nodes[1].m

	remove := func(m *Manager) *db.Tx {
		tx, err := m.db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		items, err := tx.Folder(ctx, m.itemsPath)
		if err != nil {
			t.Fatal(err)
		}
		count, err := db.GetAs[*Count](ctx, tx, m.countPath)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := db.GetAs[*Record](ctx, tx, m.recordPath(key))
		if err != nil {
			t.Fatal(err)
		}
		if err := unlink(ctx, items, count, key, rec); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	save := func(m *Manager) *db.Tx {
		tx, err := m.db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := db.GetAs[*Record](ctx, tx, m.recordPath(key))
		if err != nil {
			t.Fatal(err)
		}
		rec.Data["other"] = enc(t, time.Now().String()) // a change every time
		return tx
	}

	// Two deleters: the second conflicts.
	tx1, tx2 := remove(m1), remove(m2)
	if _, err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Commit(ctx); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("second deleter: %v, want a conflict", err)
	}
	if n, _ := m1.Count(ctx); n != 0 {
		t.Fatalf("count = %d after two deleters, want 0", n)
	}

	// A save racing a deletion: whichever commits second conflicts.
	br2 := newBrowser(t)
	br2.set(c.nodes[0].srv.URL, "k", "v")
	key = br2.key(c.nodes[0].srv.URL)
	txSave, txDel := save(m1), remove(m2)
	if _, err := txSave.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := txDel.Commit(ctx); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("deletion after a save: %v, want a conflict", err)
	}
	txDel, txSave = remove(m2), save(m1)
	if _, err := txDel.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := txSave.Commit(ctx); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("save after a deletion: %v, want a conflict", err)
	}
	if n, _ := m1.Count(ctx); n != 0 {
		t.Fatalf("count = %d, want 0", n)
	}
}

func TestCountMergeKeepsTheLimit(t *testing.T) {
	old := &Count{N: 3}
	// Two creations at 3 of 5: both fit.
	got, err := (&Count{N: 4, Limit: 5}).Merge(old, &Count{N: 4, Limit: 5})
	if err != nil || got.(*Count).N != 5 {
		t.Fatalf("merge within the limit: %v %v", got, err)
	}
	// A creation at 4 of 5 against a committed 5: refused.
	if _, err := (&Count{N: 5, Limit: 5}).Merge(&Count{N: 4}, &Count{N: 5}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("merge past the limit: %v", err)
	}
	// Deletions always merge, also past the limit (after a lowered limit).
	got, err = (&Count{N: 6, Limit: 5}).Merge(&Count{N: 7}, &Count{N: 9})
	if err != nil || got.(*Count).N != 8 {
		t.Fatalf("deletion merge: %v %v", got, err)
	}
	// No limit: plain addition.
	got, err = (&Count{N: 11}).Merge(&Count{N: 10}, &Count{N: 20})
	if err != nil || got.(*Count).N != 21 {
		t.Fatalf("unlimited merge: %v %v", got, err)
	}
}
