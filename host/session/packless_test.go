package session

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/packless"
)

// TestPacklessSessionsFreeSpace runs the sessions partition on the real
// packless storage (LevelDB, no history): sessions work across nodes,
// concurrent requests of one browser merge, and swept sessions' records
// are gone from the store, not just unlinked.
func TestPacklessSessionsFreeSpace(t *testing.T) {
	st, err := packless.Open(filepath.Join(t.TempDir(), "sessions"), packless.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c := newClusterOn(t, 2, Options{Timeout: time.Minute, Refresh: 10 * time.Second}, st)
	a, b := c.nodes[0].srv.URL, c.nodes[1].srv.URL
	ctx := context.Background()

	const n = 10
	var keys []string
	for i := 0; i < n; i++ {
		br := newBrowser(t)
		br.set(a, "k", fmt.Sprint(i))
		if v, ok := br.get(b, "k"); !ok || v != fmt.Sprint(i) {
			t.Fatalf("session %d not readable on node 2", i)
		}
		keys = append(keys, br.key(a))
	}
	live := newBrowser(t)
	live.set(a, "start", "1")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := live.try("POST", []string{a, b}[i%2], "/set", url.Values{"k": {fmt.Sprint("p", i)}, "v": {"x"}})
			if err != nil || code != 200 {
				t.Errorf("parallel set %d: %d %s %v", i, code, body, err)
			}
		}()
	}
	wg.Wait()
	code, body := live.do("GET", b, "/all", nil)
	for i := 0; i < 20; i++ {
		if want := fmt.Sprintf(`"p%d":"x"`, i); code != 200 || !strings.Contains(body, want) {
			t.Fatalf("key p%d lost: %s", i, body)
		}
	}

	// The oids of the sessions that will expire.
	var oids []storage.Oid
	err = c.nodes[0].db.View(ctx, func(tx *db.Tx) error {
		oids = oids[:0]
		for _, k := range keys {
			rec, err := db.GetAs[*Record](ctx, tx, c.nodes[0].m.recordPath(k))
			if err != nil {
				return err
			}
			oid, _ := rec.Oid()
			oids = append(oids, oid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.clock.Advance(50 * time.Second)
	live.set(a, "still", "here") // keeps one session alive
	c.clock.Advance(30 * time.Second)
	removed, err := c.nodes[1].m.Sweep(ctx)
	if err != nil || removed != n {
		t.Fatalf("sweep removed %d, %v; want %d", removed, err, n)
	}
	for _, oid := range oids {
		if _, err := st.Load(ctx, oid); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("swept record %s still stored: %v", oid, err)
		}
	}
	if v, ok := live.get(b, "still"); !ok || v != "here" {
		t.Fatal("live session lost")
	}
	if n, _ := c.nodes[0].m.Count(ctx); n != 1 {
		t.Fatalf("count = %d, want 1", n)
	}
}
