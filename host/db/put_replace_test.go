package db_test

import (
	"errors"
	"testing"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// TestPutReplacementConflictsInsteadOfMerging: Put replaces an object
// (keeping its oid) so that a concurrent change to it conflicts; the
// replacement is a new state, not a delta on the old one, so it must not
// be merged as one. Resetting a counter with Put while another
// transaction increments it must not leave base-relative arithmetic
// (11 + (0 - 10) = 1) behind.
func TestPutReplacementConflictsInsteadOfMerging(t *testing.T) {
	ctx := testCtx(t)
	d := openDB(t, newMem(t), db.Options{})
	if _, err := d.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/c", db.NewCounter(10)) }); err != nil {
		t.Fatal(err)
	}
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	if err := tx.Put(ctx, "/c", db.NewCounter(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		c, err := tx.Counter(ctx, "/c")
		if err == nil {
			c.Add(1)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Commit(ctx)
	var got int64
	if verr := d.View(ctx, func(tx *db.Tx) error {
		c, err := tx.Counter(ctx, "/c")
		if err == nil {
			got = c.Value()
		}
		return err
	}); verr != nil {
		t.Fatal(verr)
	}
	if !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("replacing commit: err %v, counter now %d; want a conflict (counter 11)", err, got)
	}
	if got != 11 {
		t.Fatalf("counter %d, want 11", got)
	}
}
