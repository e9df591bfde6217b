package packless_test

import (
	"context"
	"slices"
	"testing"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/packless"
)

// commitCollecting commits recs and returns the tid and what the commit
// reported it collected, checking that nothing is reported before Finish.
func commitCollecting(t *testing.T, st storage.Storage, recs ...storage.Record) (storage.Tid, []storage.Oid) {
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
	if got := ct.Collected(); got != nil {
		t.Fatalf("Collected before Finish = %v, want nil", got)
	}
	tid, err := txn.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tid, ct.Collected()
}

// TestCollectedNamesWhatTheCommitRemoved: the commit that drops the last
// reference to a subtree reports every object of it, and only those; a
// new object nothing references is collected in its own commit and
// reported too.
func TestCollectedNamesWhatTheCommitRemoved(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir(), packless.Options{NoSync: true})
	oids, err := st.NewOids(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c, orphan := oids[0], oids[1], oids[2], oids[3]
	tid, got := commitCollecting(t, st,
		storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: []storage.Oid{a, c}},
		storage.Record{Oid: a, Data: []byte("a"), Refs: []storage.Oid{b}},
		storage.Record{Oid: b, Data: []byte("b")},
		storage.Record{Oid: c, Data: []byte("c")})
	if got != nil {
		t.Fatalf("a commit that unlinks nothing collected %v", got)
	}
	_, got = commitCollecting(t, st,
		storage.Record{Oid: storage.RootOid, Serial: tid, Data: []byte("root, a unlinked"), Refs: []storage.Oid{c}},
		storage.Record{Oid: orphan, Data: []byte("nobody references me")})
	want := []storage.Oid{a, b, orphan}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Collected = %v, want %v", got, want)
	}
	for _, o := range want {
		if _, err := st.Load(ctx, o); err == nil {
			t.Fatalf("%s reported collected but still loads", o)
		}
	}
	if _, err := st.Load(ctx, c); err != nil {
		t.Fatalf("c is still referenced: %v", err)
	}
}
