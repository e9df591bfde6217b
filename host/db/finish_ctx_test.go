package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// ctxStorage is a storage whose Finish fails when its context is done,
// as a networked storage's does, and calls afterFinish after a
// successful one.
type ctxStorage struct {
	storage.Storage
	afterFinish func()
}

func (s *ctxStorage) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	t, err := s.Storage.Begin(ctx, meta)
	if err != nil {
		return nil, err
	}
	return &ctxTxn{Txn: t, s: s}, nil
}

func (s *ctxStorage) Close() error { return nil }

type ctxTxn struct {
	storage.Txn
	s *ctxStorage
}

func (t *ctxTxn) Finish(ctx context.Context) (storage.Tid, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("finish: %w", err)
	}
	tid, err := t.Txn.Finish(ctx)
	if err == nil && t.s.afterFinish != nil {
		t.s.afterFinish()
	}
	return tid, err
}

// TestCommitFinishIgnoresCallerCancel: once every partition voted, the
// commit must finish on all of them even if the caller's context ends
// meanwhile (the HTTP client hung up): otherwise the main partition's
// change stays committed and the mounted one's is lost.
func TestCommitFinishIgnoresCallerCancel(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "sessiondata")
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	mainSt := &ctxStorage{Storage: c.main}
	part := &ctxStorage{Storage: c.parts["sessiondata"]}
	d := openDB(t, mainSt, db.Options{
		Mounts: []db.Mount{sessionMount("sessiondata", "/s")},
		OpenPartition: func(ctx context.Context, name, server string) (storage.Storage, error) {
			if _, err := c.openPartition(ctx, name, server); err != nil {
				return nil, err
			}
			return part, nil
		},
	})
	tx, err := d.Begin(reqCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	if err := tx.Put(reqCtx, "/a", db.NewDocument(map[string]any{"v": 1})); err != nil {
		t.Fatal(err)
	}
	if err := tx.Put(reqCtx, "/session_data/b", db.NewDocument(map[string]any{"v": 1})); err != nil {
		t.Fatal(err)
	}
	mainSt.afterFinish = cancel // the client leaves right after the main partition finished
	_, commitErr := tx.Commit(reqCtx)
	mainSt.afterFinish = nil
	var hasA, hasB bool
	if err := d.View(ctx, func(tx *db.Tx) error {
		var err error
		if hasA, err = tx.Exists(ctx, "/a"); err != nil {
			return err
		}
		hasB, err = tx.Exists(ctx, "/session_data/b")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if hasA != hasB {
		t.Fatalf("partial commit: /a stored %v, /session_data/b stored %v (commit error: %v)", hasA, hasB, commitErr)
	}
	if commitErr != nil || !hasA {
		t.Fatalf("commit after both votes: err %v, stored %v", commitErr, hasA)
	}
}
