package plugintest

import (
	"context"
	"os"
	"slices"
	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/internal/testbin"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

func TestExpLoadLoop(t *testing.T) {
	if os.Getenv("ZHOST_EXP") == "" {
		t.Skip()
	}
	st := pluginStorageT(t, "memory")
	ctx := context.Background()
	txn, _ := st.Begin(ctx, storage.TxMeta{})
	txn.Store(ctx, storage.Record{Oid: storage.RootOid, Data: make([]byte, 182)})
	txn.Vote(ctx)
	txn.Finish(ctx)
	var lat []time.Duration
	end := time.Now().Add(6 * time.Second)
	for time.Now().Before(end) {
		t0 := time.Now()
		st.Load(ctx, storage.RootOid)
		lat = append(lat, time.Since(t0))
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("n=%d p10 %.1f p50 %.1f p90 %.1f", len(lat), pq(lat, .1), pq(lat, .5), pq(lat, .9))
	lat = lat[:0]
	end = time.Now().Add(2 * time.Second)
	for time.Now().Before(end) {
		t0 := time.Now()
		st.Load(ctx, storage.RootOid)
		lat = append(lat, time.Since(t0))
	}
	t.Logf("back-to-back n=%d p10 %.1f p50 %.1f p90 %.1f", len(lat), pq(lat, .1), pq(lat, .5), pq(lat, .9))
}

func pq(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(float64(len(s))*q)].Nanoseconds()) / 1e3
}

func pluginStorageT(t *testing.T, typ string) storage.Storage {
	mgr, err := pluginhost.NewManager(pluginhost.Options{ZhostPath: testbin.Zhost(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	st, err := mgr.OpenStorage(context.Background(), pluginhost.StorageSpec{Type: typ, Name: "bench", Config: hcl.Values{}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}
