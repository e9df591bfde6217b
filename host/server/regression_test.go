package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

// TestRegressionAbortOvertakesVote: a client whose context ends right after
// it sent Vote sends Abort at once (client/txn.go does). The server runs
// each request in its own goroutine, so the Abort can be handled before
// the Vote registered the transaction: the Abort finds nothing, then the
// Vote takes the commit lock and holds it until TransactionTimeout,
// stalling every commit of the partition.
func TestRegressionAbortOvertakesVote(t *testing.T) {
	_, addr, _ := start(t, func(o *server.Options) { o.TransactionTimeout = 30 * time.Second })
	good := openClient(t, addr, "main")
	r := dialRaw(t, addr)
	r.hello()
	h := r.open("main")
	for round := uint32(1); round <= 200; round++ {
		vote := wire.EncodeFrame(r.id+1, &wire.Vote{Handle: h, Txn: round, Records: []storage.Record{{Oid: 1000 + storage.Oid(round), Data: []byte("x")}}})
		abort := wire.EncodeFrame(r.id+2, &wire.Abort{Handle: h, Txn: round})
		r.id += 2
		if _, err := r.c.Write(append(vote, abort...)); err != nil {
			t.Fatal(err)
		}
		r.recv()
		r.recv()
		// Is the commit lock free? A normal client's vote must get it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		txn, _ := good.Begin(ctx, storage.TxMeta{})
		txn.Store(ctx, storage.Record{Oid: 5, Data: []byte("y")})
		err := txn.Vote(ctx)
		cancel()
		txn.Abort(context.Background())
		if errors.Is(err, storage.ErrCommitLockTimeout) {
			t.Fatalf("round %d: the aborted transaction still holds the commit lock (until the %s transaction timeout): %v", round, 30*time.Second, err)
		}
		if err != nil {
			t.Fatalf("round %d: vote: %v", round, err)
		}
	}
}
