package sdk

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// slowReplyBackend serves memstorage whose Vote succeeds (takes the commit
// lock) and then only returns once the caller's context has ended: that is
// the race "the plugin's vote succeeded, but the host's call was canceled
// before the reply arrived" made deterministic.
type slowReplyBackend struct{}

func (slowReplyBackend) Schema() hcl.Schema { return hcl.Schema{} }
func (slowReplyBackend) Open(context.Context, string, hcl.Values) (storage.Storage, error) {
	return slowStorage{memstorage.New(memstorage.Options{})}, nil
}

type slowStorage struct{ storage.Storage }

func (s slowStorage) Begin(ctx context.Context, m storage.TxMeta) (storage.Txn, error) {
	t, err := s.Storage.Begin(ctx, m)
	if err != nil {
		return nil, err
	}
	if m.User != "slow" {
		return t, nil
	}
	return slowTxn{t}, nil
}

type slowTxn struct{ storage.Txn }

func (t slowTxn) Vote(ctx context.Context) error {
	if err := t.Txn.Vote(ctx); err != nil {
		return err
	}
	<-ctx.Done() // the reply is "in flight" while the host gives up
	return nil
}

// TestRegressionVoteCanceledLeaksCommitLock: a single-batch transaction is
// begun by its Vote request; if the host's context ends after the
// plugin's vote took the commit lock, the host never learns the
// transaction id, so its Abort sends nothing and the plugin holds the
// commit lock forever: every later commit times out.
func TestRegressionVoteCanceledLeaksCommitLock(t *testing.T) {
	p := &Plugin{Name: "slow", Version: "0", Backends: map[string]Backend{"slow": slowReplyBackend{}}}
	c, _ := serveInProcess(t, p)
	ctx := context.Background()
	st, err := c.Open(ctx, "slow", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	txn, err := st.Begin(ctx, storage.TxMeta{User: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(ctx, storage.Record{Oid: 0, Data: []byte("root")}); err != nil {
		t.Fatal(err)
	}
	vctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = txn.Vote(vctx)
	cancel()
	if err == nil {
		// The reply won the race against the cancellation: the host knows
		// the id, and the Abort below releases the lock.
		t.Log("vote succeeded: the reply arrived before the cancellation")
	}
	// The host does what the contract says: a failed vote is aborted.
	if err := txn.Abort(ctx); err != nil {
		t.Fatalf("abort: %v", err)
	}

	// A second transaction must be able to commit now.
	txn2, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn2.Store(ctx, storage.Record{Oid: 0, Data: []byte("root2")}); err != nil {
		t.Fatal(err)
	}
	vctx2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	err = plainVote(vctx2, txn2)
	if errors.Is(err, storage.ErrCommitLockTimeout) {
		t.Fatalf("commit lock leaked by the aborted transaction: %v", err)
	}
	_ = txn2.Abort(ctx)
}

// plainVote votes without the slow reply: it runs the plugin vote but the
// test only cares whether it can take the lock.
func plainVote(ctx context.Context, txn storage.Txn) error {
	done := make(chan error, 1)
	go func() { done <- txn.Vote(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return <-done
	}
}

// TestRegressionVoteCanceledLeaksCommitLockRealRace: the same, with no
// injected delay: memstorage over real gRPC, the host's context canceled
// at varying points of an ordinary single-batch vote. It counts how
// often the commit lock is left held by a transaction the host aborted.
func TestRegressionVoteCanceledLeaksCommitLockRealRace(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	leaks := 0
	const rounds = 300
	for i := 0; i < rounds && leaks == 0; i++ {
		st, err := c.Open(ctx, "memory", "m", nil)
		if err != nil {
			t.Fatal(err)
		}
		txn, _ := st.Begin(ctx, storage.TxMeta{})
		_ = txn.Store(ctx, storage.Record{Oid: 0, Data: make([]byte, 64<<10)})
		vctx, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(time.Duration(i%40) * 10 * time.Microsecond)
			cancel()
		}()
		verr := txn.Vote(vctx)
		cancel()
		if verr == nil {
			_, _ = txn.Finish(ctx)
		} else {
			_ = txn.Abort(ctx)
		}
		txn2, _ := st.Begin(ctx, storage.TxMeta{})
		_ = txn2.Store(ctx, storage.Record{Oid: 1, Data: []byte("x")})
		v2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
		err = txn2.Vote(v2)
		cancel2()
		if errors.Is(err, storage.ErrCommitLockTimeout) {
			leaks++
			t.Logf("round %d: first vote returned %v; the second could not take the commit lock: %v", i, verr, err)
		}
		_ = txn2.Abort(ctx)
		_ = st.Close()
	}
	if leaks > 0 {
		t.Fatalf("commit lock leaked in %d rounds", leaks)
	}
}
