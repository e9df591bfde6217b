package memstorage_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Factory{
		Open: func(t testing.TB, dir string) (storage.Storage, error) {
			return memstorage.New(memstorage.Options{}), nil
		},
	})
}

func TestOnCommitOrderAndClockBack(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var seen []storage.TxInfo
	clock := time.Unix(2_000_000_000, 0)
	st := memstorage.New(memstorage.Options{
		OnCommit: func(info storage.TxInfo) { mu.Lock(); seen = append(seen, info); mu.Unlock() },
		Now:      func() time.Time { return clock },
	})
	t.Cleanup(func() { _ = st.Close() })
	tid1, err := storagetest.Commit(ctx, st, storage.TxMeta{User: "a"}, storage.Record{Oid: storage.RootOid, Data: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(-time.Hour) // the clock goes back; tids must not
	tid2, err := storagetest.Commit(ctx, st, storage.TxMeta{User: "b"}, storage.Record{Oid: storage.RootOid, Serial: tid1, Data: []byte("2")})
	if err != nil {
		t.Fatal(err)
	}
	if tid1 != storage.TidAt(time.Unix(2_000_000_000, 0)) || tid2 != tid1+1 {
		t.Fatalf("tids %s %s, want the clock's and one more", tid1, tid2)
	}
	utid, _, err := st.Undo(ctx, tid2, storage.TxMeta{User: "c"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0].Tid != tid1 || seen[1].Tid != tid2 || seen[2].Tid != utid || seen[2].User != "c" {
		t.Fatalf("OnCommit saw %+v", seen)
	}
	if !slices.Equal(seen[1].Oids, []storage.Oid{storage.RootOid}) {
		t.Fatalf("OnCommit oids %v", seen[1].Oids)
	}
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	st := memstorage.New(memstorage.Options{ReadOnly: true})
	t.Cleanup(func() { _ = st.Close() })
	if !st.Capabilities().ReadOnly {
		t.Fatal("Capabilities().ReadOnly is false")
	}
	if _, err := st.Begin(ctx, storage.TxMeta{}); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("Begin = %v", err)
	}
	if _, err := st.NewOids(ctx, 1); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("NewOids = %v", err)
	}
	if err := st.Pack(ctx, 1, nil); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("Pack = %v", err)
	}
	if _, _, err := st.Undo(ctx, 1, storage.TxMeta{}); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("Undo = %v", err)
	}
}
