package sdk

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/packless"
)

// packlessBackend serves a real packless store from dir, whose commits
// collect unreachable objects.
type packlessBackend struct{ dir string }

func (packlessBackend) Schema() hcl.Schema { return hcl.Schema{} }

func (b packlessBackend) Open(_ context.Context, name string, _ hcl.Values) (storage.Storage, error) {
	return packless.Open(filepath.Join(b.dir, name), packless.Options{NoSync: true})
}

// TestCollectedCrossesTheBoundary: what a packless commit collected
// reaches the host through the Finish reply, so the host's txn reports
// it (storage.CollectingTxn) as the in-process one does; a backend that
// collects nothing reports nil.
func TestCollectedCrossesTheBoundary(t *testing.T) {
	p := testPlugin()
	p.Backends["packless"] = packlessBackend{dir: t.TempDir()}
	c, _ := serveInProcess(t, p)
	ctx := context.Background()
	st, err := c.Open(ctx, "packless", "sessions", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	oids, err := st.NewOids(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	x, y := oids[0], oids[1]
	tid, got := remoteCommit(t, st,
		storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: []storage.Oid{x}},
		storage.Record{Oid: x, Data: []byte("x"), Refs: []storage.Oid{y}},
		storage.Record{Oid: y, Data: []byte("y")})
	if got != nil {
		t.Fatalf("first commit collected %v", got)
	}
	_, got = remoteCommit(t, st, storage.Record{Oid: storage.RootOid, Serial: tid, Data: []byte("root")})
	if want := []storage.Oid{x, y}; !slices.Equal(got, want) {
		t.Fatalf("Collected across the boundary = %v, want %v", got, want)
	}
	if _, err := st.Load(ctx, x); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("load of collected x = %v, want ErrNotFound", err)
	}

	mem, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	if _, got := remoteCommit(t, mem, storage.Record{Oid: storage.RootOid, Data: []byte("root")}); got != nil {
		t.Fatalf("memstorage commit reported collected %v", got)
	}
}

// remoteCommit commits recs and returns the tid and what the host-side
// txn reports collected.
func remoteCommit(t *testing.T, st storage.Storage, recs ...storage.Record) (storage.Tid, []storage.Oid) {
	t.Helper()
	ctx := context.Background()
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	ct, ok := txn.(storage.CollectingTxn)
	if !ok {
		t.Fatalf("%T does not implement storage.CollectingTxn", txn)
	}
	for _, r := range recs {
		if err := txn.Store(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	tid, err := txn.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tid, ct.Collected()
}
