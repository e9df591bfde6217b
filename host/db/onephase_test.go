package db_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// countingStorage counts how its transactions commit: Vote (two-phase)
// or Commit (one-phase, storage.OnePhaseTxn).
type countingStorage struct {
	storage.Storage
	votes, commits atomic.Int32
}

func (s *countingStorage) Begin(ctx context.Context, m storage.TxMeta) (storage.Txn, error) {
	t, err := s.Storage.Begin(ctx, m)
	if err != nil {
		return nil, err
	}
	return &countingTxn{Txn: t, s: s}, nil
}

func (s *countingStorage) Close() error { return nil } // the test owns the storage

func (s *countingStorage) reset() { s.votes.Store(0); s.commits.Store(0) }

type countingTxn struct {
	storage.Txn
	s *countingStorage
}

func (t *countingTxn) Vote(ctx context.Context) error {
	t.s.votes.Add(1)
	return t.Txn.Vote(ctx)
}

func (t *countingTxn) Commit(ctx context.Context) (storage.Tid, error) {
	t.s.commits.Add(1)
	return storage.CommitOnePhase(ctx, t.Txn)
}

var _ storage.OnePhaseTxn = (*countingTxn)(nil)

// TestOnePhaseForOnePartition: a transaction that writes one partition
// commits in one phase, also when a conflict is merged; one that writes
// two keeps two-phase commit.
func TestOnePhaseForOnePartition(t *testing.T) {
	ctx := testCtx(t)
	main := &countingStorage{Storage: newMem(t)}
	sess := &countingStorage{Storage: newMem(t)}
	open := func(_ context.Context, name, _ string) (storage.Storage, error) { return sess, nil }
	opts := db.Options{Mounts: []db.Mount{sessionMount("sessiondata", "session_data")}, OpenPartition: open}
	d1 := openDB(t, main, opts)
	d2 := openDB(t, main, opts)
	if _, err := d1.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/hits", db.NewCounter(0)) }); err != nil {
		t.Fatal(err)
	}
	main.reset()
	sess.reset()
	if _, err := d1.Update(ctx, func(tx *db.Tx) error {
		c, err := db.GetAs[*db.Counter](ctx, tx, "/hits")
		if err != nil {
			return err
		}
		c.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v, c := main.votes.Load(), main.commits.Load(); v != 0 || c != 1 {
		t.Fatalf("one-partition commit: %d votes, %d one-phase commits; want 0 and 1", v, c)
	}

	// A conflict through one-phase commit is merged and committed again
	// in one phase.
	main.reset()
	merges := d2.Stats().Merges
	if _, err := d2.Update(ctx, func(tx *db.Tx) error {
		c, err := db.GetAs[*db.Counter](ctx, tx, "/hits")
		if err != nil {
			return err
		}
		if _, err := d1.Update(ctx, func(tx1 *db.Tx) error {
			c1, err := db.GetAs[*db.Counter](ctx, tx1, "/hits")
			if err != nil {
				return err
			}
			c1.Add(10)
			return nil
		}); err != nil {
			return err
		}
		c.Add(100)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if d2.Stats().Merges == merges {
		t.Fatal("no merge: the conflict did not happen")
	}
	if v, c := main.votes.Load(), main.commits.Load(); v != 0 || c != 3 {
		t.Fatalf("merged commit: %d votes, %d one-phase commits; want 0 and 3 (d1, d2's conflicting, d2's merged)", v, c)
	}
	if err := d1.View(ctx, func(tx *db.Tx) error {
		c, err := db.GetAs[*db.Counter](ctx, tx, "/hits")
		if err == nil && c.Value() != 111 {
			t.Errorf("counter %d after merge, want 111", c.Value())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// Two partitions: two-phase commit, one vote on each.
	main.reset()
	sess.reset()
	if _, err := d1.Update(ctx, func(tx *db.Tx) error {
		f, err := tx.MkdirAll(ctx, "/session_data/s")
		if err != nil {
			return err
		}
		if err := f.Put(ctx, "abc", &Session{ID: "abc"}); err != nil {
			return err
		}
		return tx.Put(ctx, "/page", db.NewDocument(nil))
	}); err != nil {
		t.Fatal(err)
	}
	if main.votes.Load() != 1 || sess.votes.Load() != 1 || main.commits.Load()+sess.commits.Load() != 0 {
		t.Fatalf("two-partition commit: votes %d+%d, one-phase commits %d+%d; want 1+1 and 0",
			main.votes.Load(), sess.votes.Load(), main.commits.Load(), sess.commits.Load())
	}
}
