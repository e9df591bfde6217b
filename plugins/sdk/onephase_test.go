package sdk

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// TestCommitOnePhaseOneCall: the host-side transaction is a
// storage.OnePhaseTxn, and a conflicting Commit keeps every oid.
func TestCommitOnePhaseOneCall(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	oids, err := st.NewOids(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	recs := []storage.Record{{Oid: storage.RootOid, Data: []byte("r"), Refs: oids}}
	for _, o := range oids {
		recs = append(recs, storage.Record{Oid: o, Data: []byte("v1")})
	}
	tid1, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...)
	if err != nil {
		t.Fatal(err)
	}
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := txn.(storage.OnePhaseTxn); !ok {
		t.Fatalf("%T is not a storage.OnePhaseTxn", txn)
	}
	for _, o := range oids {
		_ = txn.Store(ctx, storage.Record{Oid: o, Data: []byte("v2")}) // based on ZeroTid: conflicts
	}
	_, err = storage.CommitOnePhase(ctx, txn)
	var ce *storage.ConflictError
	if !errors.As(err, &ce) || len(ce.Oids()) != 2 {
		t.Fatalf("conflicting one-phase commit: %v, want both oids", err)
	}
	if err := txn.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	txn, _ = st.Begin(ctx, storage.TxMeta{})
	_ = txn.Store(ctx, storage.Record{Oid: oids[0], Serial: tid1, Data: []byte("v2")})
	tid2, err := storage.CommitOnePhase(ctx, txn)
	if err != nil || tid2 <= tid1 {
		t.Fatalf("one-phase commit: %s, %v", tid2, err)
	}
	if r, err := st.Load(ctx, oids[0]); err != nil || string(r.Data) != "v2" || r.Serial != tid2 {
		t.Fatalf("load after one-phase commit: %q@%s, %v", r.Data, r.Serial, err)
	}
}

// TestCommitOnePhaseCanceledNeverLeaksLock cancels the host's Commit at
// varying points: whatever the outcome, the commit lock is free after the
// host aborts, and a Commit that reported success is in the storage.
func TestCommitOnePhaseCanceledNeverLeaksLock(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rounds := 200
	if testing.Short() {
		rounds = 40
	}
	var serial storage.Tid
	for i := 0; i < rounds; i++ {
		txn, _ := st.Begin(ctx, storage.TxMeta{})
		_ = txn.Store(ctx, storage.Record{Oid: 0, Serial: serial, Data: make([]byte, 64<<10)})
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(time.Duration(i%40) * 10 * time.Microsecond)
			cancel()
		}()
		tid, cerr := storage.CommitOnePhase(cctx, txn)
		cancel()
		_ = txn.Abort(ctx)
		if cerr == nil {
			if r, err := st.Load(ctx, 0); err != nil || r.Serial != tid {
				t.Fatalf("round %d: acknowledged commit %s lost: load %s, %v", i, tid, r.Serial, err)
			}
		}
		// The lock must be free: a plain commit goes through in time. A
		// commit whose outcome was unknown to the host may still be
		// finishing in the plugin: a conflict then means reload and retry.
		var err error
		for try := 0; try < 50; try++ {
			serial = storage.ZeroTid
			if r, lerr := st.Load(ctx, 0); lerr == nil {
				serial = r.Serial
			}
			lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
			var t2 storage.Tid
			t2, err = storagetest.Commit(lctx, st, storage.TxMeta{}, storage.Record{Oid: 0, Serial: serial, Data: []byte("x")})
			lcancel()
			if err == nil {
				serial = t2
				break
			}
			if !errors.Is(err, storage.ErrConflict) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err != nil {
			t.Fatalf("round %d: commit after a canceled one-phase commit (%v): %v", i, cerr, err)
		}
	}
}

// TestCommitOnePhasePluginGone: a Commit to a plugin process that went
// away fails as unavailable, which is not a vote failure (the outcome is
// unknown to the host).
func TestCommitOnePhasePluginGone(t *testing.T) {
	c, exit := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	_ = txn.Store(ctx, storage.Record{Oid: 0, Data: []byte("r")})
	exit()
	_, err = storage.CommitOnePhase(ctx, txn)
	if !errors.Is(err, ErrPluginUnavailable) || storage.IsVoteFailure(err) {
		t.Fatalf("commit after exit: %v, want ErrPluginUnavailable (not a vote failure)", err)
	}
	_ = txn.Abort(ctx)
	_ = st.Close()
}

// oldBackend is a plugin built before the Commit RPC (so before the
// Calls stream too).
type oldBackend struct{ *Server }

func (oldBackend) Calls(pb.Backend_CallsServer) error {
	return status.Error(codes.Unimplemented, "method Calls not implemented")
}

func (oldBackend) Commit(context.Context, *pb.StoreRequest) (*pb.FinishResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method Commit not implemented")
}

// TestCommitOnePhaseOldPlugin: against a plugin without the Commit RPC,
// a one-phase commit falls back to Vote and Finish, with the same
// results (and conflicts).
func TestCommitOnePhaseOldPlugin(t *testing.T) {
	c, _ := serveWith(t, testPlugin(), "old", func(srv *Server) pb.BackendServer { return oldBackend{srv} })
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var serial storage.Tid
	for i := 0; i < 3; i++ {
		txn, _ := st.Begin(ctx, storage.TxMeta{})
		_ = txn.Store(ctx, storage.Record{Oid: storage.RootOid, Serial: serial, Data: []byte{byte(i)}})
		tid, err := storage.CommitOnePhase(ctx, txn)
		if err != nil || tid <= serial {
			t.Fatalf("commit %d on an old plugin: %s, %v", i, tid, err)
		}
		serial = tid
	}
	txn, _ := st.Begin(ctx, storage.TxMeta{})
	_ = txn.Store(ctx, storage.Record{Oid: storage.RootOid, Data: []byte("stale")})
	if _, err := storage.CommitOnePhase(ctx, txn); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale commit on an old plugin: %v, want a conflict", err)
	}
	_ = txn.Abort(ctx)
	if r, err := st.Load(ctx, storage.RootOid); err != nil || r.Serial != serial {
		t.Fatalf("load: %s, %v", r.Serial, err)
	}
}
