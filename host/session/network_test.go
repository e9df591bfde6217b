package session

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/plugins/packless"
)

// newNetCluster is the real topology: a storage server (host/server) on
// 127.0.0.1 serving "main" (in memory) and "sessiondata" (packless), and
// n app nodes, each with its own client connection (host/client, with its
// RAM cache and invalidations) under its own host/db. The counting
// wrappers sit on the server's backends, so they count what actually
// reaches storage.
func newNetCluster(t testing.TB, n int, o Options) *cluster {
	t.Helper()
	mainSt := memstorage.New(memstorage.Options{})
	sessSt, err := packless.Open(filepath.Join(t.TempDir(), "sessions"), packless.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		main:  &countingStorage{Storage: mainSt},
		sess:  &countingStorage{Storage: sessSt},
		clock: newClock(),
	}
	srv, err := server.New(server.Options{
		Listen:     "127.0.0.1:0",
		Partitions: map[string]server.Partition{"main": {Storage: c.main}, "sessiondata": {Storage: c.sess}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: nodes and connections go before
	// the server, the server before its backends.
	t.Cleanup(func() { _ = mainSt.Close(); _ = sessSt.Close() })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	addr := srv.Addr().String()
	c.open = func(t testing.TB, name string) *db.DB {
		ctx := context.Background()
		conn, err := client.Dial(ctx, client.ConnOptions{Addr: addr, Name: name})
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		mainC, err := conn.Open(ctx, "main", client.PartitionOptions{})
		if err != nil {
			t.Fatalf("open main: %v", err)
		}
		t.Cleanup(func() { _ = mainC.Close() })
		return openMountedDB(t, mainC, func(ctx context.Context) (storage.Storage, error) {
			return conn.Open(ctx, "sessiondata", client.PartitionOptions{})
		})
	}
	for i := 0; i < n; i++ {
		c.addNode(t, fmt.Sprintf("app%d", i+1), o)
	}
	return c
}

// TestTwoNodesOverTheNetwork is the proof on the real stack:
// browsers with cookie jars against two app nodes that share one storage
// server.
func TestTwoNodesOverTheNetwork(t *testing.T) {
	c := newNetCluster(t, 2, Options{Timeout: time.Minute, Refresh: 10 * time.Second, Limit: 5})
	a, b := c.nodes[0].srv.URL, c.nodes[1].srv.URL
	ctx := context.Background()

	t.Run("set on one node, read on the other", func(t *testing.T) {
		br := newBrowser(t)
		br.set(a, "cart", "figs")
		if v, ok := br.get(b, "cart"); !ok || v != "figs" {
			t.Fatalf("node 2 reads %q %v", v, ok)
		}
		br.set(b, "cart", "dates")
		if v, _ := br.get(a, "cart"); v != "dates" {
			t.Fatalf("node 1 reads %q after node 2 changed it", v)
		}
	})

	t.Run("50 concurrent requests of one browser lose nothing", func(t *testing.T) {
		br := newBrowser(t)
		br.set(a, "start", "1")
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body, err := br.try("POST", []string{a, b}[i%2], "/set", url.Values{"k": {fmt.Sprintf("k%02d", i)}, "v": {fmt.Sprint(i)}})
				if err != nil || code != 200 {
					t.Errorf("request %d: %d %s %v", i, code, body, err)
				}
			}()
		}
		wg.Wait()
		for i := 0; i < 50; i++ {
			node := []string{b, a}[i%2]
			if v, ok := br.get(node, fmt.Sprintf("k%02d", i)); !ok || v != fmt.Sprint(i) {
				t.Fatalf("k%02d = %q %v", i, v, ok)
			}
		}
		t.Logf("db merges: node1 %d node2 %d; replays %d %d",
			c.nodes[0].db.Stats().Merges, c.nodes[1].db.Stats().Merges, c.nodes[0].m.Stats().Replays, c.nodes[1].m.Stats().Replays)
	})

	t.Run("renewal", func(t *testing.T) {
		br := newBrowser(t)
		br.set(a, "user", "ann")
		old := br.cookie(a)
		if code, _ := br.do("POST", b, "/renew", nil); code != 200 {
			t.Fatal("renew")
		}
		if br.cookie(a) == old {
			t.Fatal("id not renewed")
		}
		if v, _ := br.get(a, "user"); v != "ann" {
			t.Fatal("data lost")
		}
		thief := newBrowser(t)
		thief.setCookie(a, old)
		if _, ok := thief.get(b, "user"); ok {
			t.Fatal("old id still valid")
		}
	})

	t.Run("limit", func(t *testing.T) {
		// Create sessions until the limit answers; a node's view of the
		// count may lag the other's commit by an instant, so count the
		// refusals rather than predict them.
		refused := false
		for i := 0; i < 10 && !refused; i++ {
			code, body, err := newBrowser(t).try("POST", []string{a, b}[i%2], "/set", url.Values{"k": {"k"}, "v": {"v"}})
			switch {
			case err != nil:
				t.Fatal(err)
			case code == 503:
				refused = true
			case code != 200:
				t.Fatalf("set: %d %s", code, body)
			}
		}
		if !refused {
			t.Fatal("the limit never answered 503")
		}
		waitFor(t, func() bool { n, _ := c.nodes[0].m.Count(ctx); return n == 5 })
	})

	t.Run("expiry", func(t *testing.T) {
		br := newBrowser(t)
		// Make room: every earlier session expires and is swept.
		c.clock.Advance(2 * time.Minute)
		if _, err := c.nodes[1].m.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		// Node 1 sees node 2's sweep as soon as the invalidation lands.
		waitFor(t, func() bool { n, _ := c.nodes[0].m.Count(ctx); return n == 0 })
		br.set(a, "k", "v")
		c.clock.Advance(30 * time.Second)
		if _, ok := br.get(b, "k"); !ok {
			t.Fatal("expired early")
		}
		c.clock.Advance(61 * time.Second)
		if _, ok := br.get(b, "k"); ok {
			t.Fatal("not expired after the timeout")
		}
	})
}
