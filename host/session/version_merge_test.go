package session

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/zhostdb/zhost/host/db"
)

// TestMergedWriteGetsItsOwnVersion: two concurrent requests of one
// browser change different keys; the second merges at commit. Versions
// name states for read-your-writes, so the merged state must get a
// version of its own (greater than the first request's), and the second
// browser's version cookie must name it: a node that has applied only
// the first commit would otherwise pass the version check and serve
// session data without the second request's key.
func TestMergedWriteGetsItsOwnVersion(t *testing.T) {
	c := newCluster(t, 1, Options{})
	m := c.nodes[0].m
	base := c.nodes[0].srv.URL
	br := newBrowser(t)
	br.set(base, "start", "1")
	cookie := br.cookie(base)

	newHandle := func() (*Handle, *httptest.ResponseRecorder) {
		req := httptest.NewRequest("GET", "/x", nil)
		req.AddCookie(&http.Cookie{Name: m.ids.CookieName(), Value: cookie})
		rec := httptest.NewRecorder()
		return &Handle{m: m, rw: &responseWriter{w: rec}, r: req}, rec
	}
	ctx := context.Background()
	hA, recA := newHandle()
	hB, recB := newHandle()
	// Both load the session on the same snapshot, then change different keys.
	if err := hA.Set(ctx, "a", "1"); err != nil {
		t.Fatal(err)
	}
	if err := hB.Set(ctx, "b", "1"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*Handle{hA, hB} {
		h.mu.Lock()
		err := h.finish(ctx)
		h.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	version := func(rec *httptest.ResponseRecorder) uint64 {
		for _, ck := range rec.Result().Cookies() {
			if ck.Name == m.ids.VersionCookieName() {
				v, _ := strconv.ParseUint(ck.Value, 10, 64)
				return v
			}
		}
		t.Fatalf("no version cookie in %v", rec.Header())
		return 0
	}
	vA, vB := version(recA), version(recB)
	var stored *Record
	if err := c.nodes[0].db.View(ctx, func(tx *db.Tx) error {
		var err error
		stored, err = db.GetAs[*Record](ctx, tx, m.recordPath(Key(cookie)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if string(stored.Data["a"]) == "" || string(stored.Data["b"]) == "" {
		t.Fatalf("merge lost a key: %v", stored.Data)
	}
	if stored.Version <= vA {
		t.Errorf("merged state {a,b} has version %d, not above the first commit's %d ({a} only)", stored.Version, vA)
	}
	if vB != stored.Version {
		t.Errorf("second browser's version cookie %d, stored merged version %d", vB, stored.Version)
	}
}
