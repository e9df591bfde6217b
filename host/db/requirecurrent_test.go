package db_test

import (
	"errors"
	"testing"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// TestRequireCurrent: an object marked current conflicts with a
// concurrent change even when this transaction leaves it unchanged, and
// even when its type (a counter) could merge the change.
func TestRequireCurrent(t *testing.T) {
	ctx := testCtx(t)
	d := openDB(t, newMem(t), db.Options{})
	if _, err := d.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/c", db.NewCounter(10)) }); err != nil {
		t.Fatal(err)
	}
	for _, change := range []bool{false, true} {
		tx, err := d.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tx.Counter(ctx, "/c")
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.RequireCurrent(c); err != nil {
			t.Fatal(err)
		}
		if change {
			c.Add(5)
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
		if _, err := tx.Commit(ctx); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("change=%v: commit err %v, want a conflict", change, err)
		}
	}
	// Unchallenged, it commits.
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		c, err := tx.Counter(ctx, "/c")
		if err != nil {
			return err
		}
		return tx.RequireCurrent(c)
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.View(ctx, func(tx *db.Tx) error {
		c, err := tx.Counter(ctx, "/c")
		if err == nil && c.Value() != 12 {
			t.Errorf("counter %d, want 12", c.Value())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Objects of other transactions are refused.
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.RequireCurrent(db.NewCounter(1))
	}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("detached object: %v", err)
	}
}
