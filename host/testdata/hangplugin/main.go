// Command hangplugin is a test plugin whose storage hangs when told to,
// like a deadlocked backend or an fsync stuck on a dead NFS server: the
// process stays alive and the call never returns, whatever its context
// says. Its storage type "hang" keeps its data in memory; a transaction
// whose description is "hang:vote", "hang:finish" or "hang:abort" never
// returns from that call.
package main

import (
	"context"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

type backend struct{}

func (backend) Schema() hcl.Schema { return hcl.Schema{} }

func (backend) Open(context.Context, string, hcl.Values) (storage.Storage, error) {
	return hangStorage{memstorage.New(memstorage.Options{})}, nil
}

// hangStorage is a memory storage whose transactions may hang.
type hangStorage struct{ storage.Storage }

func (s hangStorage) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	txn, err := s.Storage.Begin(ctx, meta)
	if err != nil {
		return nil, err
	}
	return hangTxn{Txn: txn, hangIn: meta.Description}, nil
}

type hangTxn struct {
	storage.Txn
	hangIn string // "hang:vote", "hang:finish", "hang:abort" or anything else
}

// hang blocks forever when the transaction was told to hang in op.
func (t hangTxn) hang(op string) {
	if t.hangIn == "hang:"+op {
		select {} // the host must kill the process
	}
}

func (t hangTxn) Vote(ctx context.Context) error {
	t.hang("vote")
	return t.Txn.Vote(ctx)
}

func (t hangTxn) Finish(ctx context.Context) (storage.Tid, error) {
	t.hang("finish")
	return t.Txn.Finish(ctx)
}

func (t hangTxn) Abort(ctx context.Context) error {
	t.hang("abort")
	return t.Txn.Abort(ctx)
}

func main() {
	sdk.Serve(&sdk.Plugin{
		Name:     "hang",
		Version:  "1.0.0",
		Backends: map[string]sdk.Backend{"hang": backend{}},
	})
}
