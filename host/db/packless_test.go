package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/packless"
)

// openPackless opens a real packless (LevelDB) store in a temp dir.
func openPackless(t *testing.T) *packless.Storage {
	t.Helper()
	st, err := packless.Open(t.TempDir(), packless.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestPacklessReadConflict: a packless partition has no history, so a
// transaction whose snapshot predates an overwrite cannot read the object;
// it gets ErrReadConflict, and Update runs the function again on a new
// snapshot.
func TestPacklessReadConflict(t *testing.T) {
	ctx := testCtx(t)
	sess := openPackless(t)
	mainSt := newMem(t)
	opts := db.Options{
		Mounts: []db.Mount{sessionMount("sessiondata", "session_data")},
		OpenPartition: func(_ context.Context, name, _ string) (storage.Storage, error) {
			return noClose{sess}, nil
		},
	}
	d := openDB(t, mainSt, opts)
	other := openDB(t, mainSt, opts)
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/session_data/s", &Session{ID: "s", Data: map[string]any{"n": 0}})
	}); err != nil {
		t.Fatal(err)
	}

	// Begin, take the partition's snapshot (read the mounted folder),
	// let another node overwrite the session, then read it.
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Folder(ctx, "/session_data"); err != nil {
		t.Fatal(err)
	}
	bump := func() {
		t.Helper()
		if _, err := other.Update(ctx, func(tx *db.Tx) error {
			s, err := db.GetAs[*Session](ctx, tx, "/session_data/s")
			if err == nil {
				s.Data["n"] = s.Data["n"].(int64) + 1
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	bump()
	_, err = tx.Get(ctx, "/session_data/s")
	if !errors.Is(err, db.ErrReadConflict) || !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("read past an overwrite: %v", err)
	}
	tx.Abort()

	// Through Update the same interleaving is retried and succeeds.
	attempts := 0
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		attempts++
		if _, err := tx.Folder(ctx, "/session_data"); err != nil {
			return err
		}
		if attempts == 1 {
			bump()
		}
		s, err := db.GetAs[*Session](ctx, tx, "/session_data/s")
		if err != nil {
			return err
		}
		s.Data["n"] = s.Data["n"].(int64) + 10
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Fatalf("%d attempts, want 2", attempts)
	}
	if err := d.View(ctx, func(tx *db.Tx) error {
		s, err := db.GetAs[*Session](ctx, tx, "/session_data/s")
		if err == nil && s.Data["n"] != int64(12) {
			err = fmt.Errorf("n = %v, want 12", s.Data["n"])
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if d.Stats().ReadConflicts == 0 {
		t.Fatal("read conflicts not counted")
	}
}

// TestPacklessSessions: concurrent session adds and merged session
// updates into a packless partition from two nodes; deleted sessions are
// collected by the packless reference counting (the records list their
// references, so unlinking frees them).
func TestPacklessSessions(t *testing.T) {
	ctx := testCtx(t)
	sess := openPackless(t)
	mainSt := newMem(t)
	var nodes [2]*db.DB
	for i := range nodes {
		nodes[i] = openDB(t, mainSt, db.Options{
			Mounts: []db.Mount{sessionMount("sessiondata", "session_data")},
			OpenPartition: func(_ context.Context, name, _ string) (storage.Storage, error) {
				return noClose{sess}, nil
			},
			MaxAttempts: 50,
		})
	}
	checkConcurrentFolderAdds(t, nodes, "/session_data/sessions")
	checkCounterIncrements(t, nodes, "/session_data/hits")

	// Session data merges key-wise (the test type's Merge).
	if _, err := nodes[0].Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/session_data/sessions/m", &Session{ID: "m", Data: map[string]any{}})
	}); err != nil {
		t.Fatal(err)
	}
	var txs [2]*db.Tx
	for i := range txs {
		tx, err := nodes[i].Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s, err := db.GetAs[*Session](ctx, tx, "/session_data/sessions/m")
		if err != nil {
			t.Fatal(err)
		}
		s.Data[fmt.Sprintf("k%d", i)] = i
		s.Accessed = int64(100 + i)
		txs[i] = tx
	}
	for _, tx := range txs {
		if _, err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var oid storage.Oid
	if err := nodes[0].View(ctx, func(tx *db.Tx) error {
		s, err := db.GetAs[*Session](ctx, tx, "/session_data/sessions/m")
		if err != nil {
			return err
		}
		oid, _ = s.Oid()
		if len(s.Data) != 2 || s.Accessed != 101 {
			return fmt.Errorf("merged session %+v accessed %d", s.Data, s.Accessed)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Unlinking the session frees its record.
	if _, err := nodes[0].Update(ctx, func(tx *db.Tx) error {
		return tx.Delete(ctx, "/session_data/sessions/m")
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Load(ctx, oid); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted session still stored: %v", err)
	}
}
