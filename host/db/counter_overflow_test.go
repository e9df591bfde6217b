package db_test

import (
	"errors"
	"math"
	"testing"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// TestCounterMergeOverflowConflicts: merging two increments that together
// pass the int64 range conflicts instead of wrapping around.
func TestCounterMergeOverflowConflicts(t *testing.T) {
	ctx := testCtx(t)
	d := openDB(t, newMem(t), db.Options{})
	if _, err := d.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/c", db.NewCounter(math.MaxInt64-1)) }); err != nil {
		t.Fatal(err)
	}
	var txs [2]*db.Tx
	for i := range txs {
		tx, err := d.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Abort()
		c, err := tx.Counter(ctx, "/c")
		if err != nil {
			t.Fatal(err)
		}
		c.Add(1)
		txs[i] = tx
	}
	if _, err := txs[0].Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := txs[1].Commit(ctx); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("second increment past MaxInt64: %v, want a conflict", err)
	}
	if err := d.View(ctx, func(tx *db.Tx) error {
		c, err := tx.Counter(ctx, "/c")
		if err == nil && c.Value() != math.MaxInt64 {
			t.Errorf("counter %d, want MaxInt64", c.Value())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
