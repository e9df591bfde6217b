package server_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// lastTidHangs is flakyFinish whose LastTid, once hang is set, does not
// answer until its context ends (and Finish works again): a plugin
// restarted after a Finish of unknown outcome that is still reopening
// its storage.
type lastTidHangs struct {
	flakyFinish
	hang atomic.Bool
}

func (s *lastTidHangs) LastTid(ctx context.Context) (storage.Tid, error) {
	if s.hang.Load() {
		s.fail.Store(false)
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return s.flakyFinish.LastTid(ctx)
}

func (s *lastTidHangs) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	return s.flakyFinish.Begin(ctx, meta)
}

// TestRegressionResetWaitsForLastTidForever: after a Finish of unknown
// outcome the server re-reads the backend's last tid holding the
// partition's publication turn. With no bound, a backend that did not
// answer held up every later commit forever; the read is bounded by
// CommitTimeout and the next commit goes through.
func TestRegressionResetWaitsForLastTidForever(t *testing.T) {
	st := &lastTidHangs{flakyFinish: flakyFinish{Storage: memstorage.New(memstorage.Options{})}}
	t.Cleanup(func() { st.Close() })
	const wait = 300 * time.Millisecond
	srv := serve(t, server.Options{Partitions: map[string]server.Partition{"main": {Storage: st}}, CommitTimeout: wait})
	ctx := ctxT(t)
	c := openClient(t, srv.Addr().String(), "main")
	commitOne := func(oid storage.Oid, data string) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		txn, _ := c.Begin(cctx, storage.TxMeta{})
		txn.Store(cctx, storage.Record{Oid: oid, Data: []byte(data)})
		if err := txn.Vote(cctx); err != nil {
			return err
		}
		_, err := txn.Finish(cctx)
		return err
	}
	st.fail.Store(true)
	st.hang.Store(true)
	start := time.Now()
	if err := commitOne(1, "unknown"); err == nil {
		t.Fatal("finish of unknown outcome reported success")
	}
	if err := commitOne(2, "next"); err != nil {
		t.Fatalf("commit after a reset whose last tid read hung: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the two commits took %s", d)
	}
	if _, err := c.Load(ctx, 2); errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("load of the committed object: %v", err)
	}
}
