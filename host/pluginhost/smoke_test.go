package pluginhost

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/testbin"
)

func TestSmoke(t *testing.T) {
	m, err := NewManager(Options{ZhostPath: testbin.Zhost(t), Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := m.OpenStorage(ctx, StorageSpec{Type: "memory", Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	txn, err := st.Begin(ctx, storage.TxMeta{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(ctx, storage.Record{Oid: 0, Data: []byte("root")}); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	tid, err := txn.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.Load(ctx, 0)
	if err != nil || string(rec.Data) != "root" || rec.Serial != tid {
		t.Fatalf("load: %+v %v", rec, err)
	}
	_, err = st.Load(ctx, 5)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("want not found, got %v", err)
	}
	t.Log(err)
}
