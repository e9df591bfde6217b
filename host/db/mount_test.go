package db_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// cluster is a main storage plus named partitions, as a server serves
// them; openPartition hands out non-owning views (the DB closes what
// OpenPartition returns, the test owns the storages).
type cluster struct {
	main  *memstorage.Storage
	parts map[string]*memstorage.Storage
	opens atomic.Int32
	down  atomic.Bool // partitions unreachable
}

func newCluster(t *testing.T, names ...string) *cluster {
	c := &cluster{main: newMem(t), parts: map[string]*memstorage.Storage{}}
	for _, n := range names {
		c.parts[n] = newMem(t)
	}
	return c
}

// noClose shares a storage without handing over its lifetime.
type noClose struct{ storage.Storage }

func (noClose) Close() error { return nil }

func (c *cluster) openPartition(_ context.Context, name, server string) (storage.Storage, error) {
	if c.down.Load() {
		return nil, fmt.Errorf("dial %s: connection refused", name)
	}
	st, ok := c.parts[name]
	if !ok || server != "" {
		return nil, fmt.Errorf("partition %q on %q: %w", name, server, storage.ErrNotFound)
	}
	c.opens.Add(1)
	return noClose{st}, nil
}

func sessionMount(partition, folder string) db.Mount {
	return db.Mount{
		Name: "session_data",
		Path: "/session_data",
		Resolve: func(context.Context) (db.Target, error) {
			return db.Target{Partition: partition, Folder: folder}, nil
		},
	}
}

func TestMountBootstrapAndTraversal(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "sessiondata")
	d := openDB(t, c.main, db.Options{
		Mounts:        []db.Mount{sessionMount("sessiondata", "session_data")},
		OpenPartition: c.openPartition,
	})
	ms := d.Mounts()
	if len(ms) != 1 || ms[0].State != db.MountReady || ms[0].Target.Partition != "sessiondata" || ms[0].Err != "" {
		t.Fatalf("mounts %+v", ms)
	}
	// The target folder was created in the partition on first use.
	direct := openDB(t, c.parts["sessiondata"], db.Options{MainPartition: "sessiondata"})
	if err := direct.View(ctx, func(tx *db.Tx) error {
		_, err := tx.Folder(ctx, "/session_data")
		return err
	}); err != nil {
		t.Fatalf("mount folder not bootstrapped in partition: %v", err)
	}

	// Write through the mount, together with a main-tree object.
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		f, err := tx.MkdirAll(ctx, "/session_data/sessions")
		if err != nil {
			return err
		}
		if err := f.Put(ctx, "abc", &Session{ID: "abc", Data: map[string]any{"k": "v"}}); err != nil {
			return err
		}
		return tx.Put(ctx, "/page", db.NewDocument(map[string]any{"t": 1}))
	}); err != nil {
		t.Fatal(err)
	}
	// The session landed in the partition, under the target folder...
	if err := direct.View(ctx, func(tx *db.Tx) error {
		s, err := db.GetAs[*Session](ctx, tx, "/session_data/sessions/abc")
		if err != nil {
			return err
		}
		if s.Data["k"] != "v" {
			return fmt.Errorf("data %v", s.Data)
		}
		if ok, _ := tx.Exists(ctx, "/page"); ok {
			return errors.New("main-tree object landed in the partition")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// ...and not in the main storage.
	mainOnly := openDB(t, c.main, db.Options{})
	if err := mainOnly.View(ctx, func(tx *db.Tx) error {
		root, err := tx.Root(ctx)
		if err != nil {
			return err
		}
		names, err := root.Names(ctx)
		if err != nil {
			return err
		}
		if !slices.Equal(names, []string{"page"}) {
			return fmt.Errorf("main root holds %v", names)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Traversal crosses the mount in both directions.
	if err := d.View(ctx, func(tx *db.Tx) error {
		root, err := tx.Root(ctx)
		if err != nil {
			return err
		}
		names, err := root.Names(ctx)
		if err != nil {
			return err
		}
		if !slices.Equal(names, []string{"page", "session_data"}) {
			return fmt.Errorf("root names %v", names)
		}
		obj, err := root.Get(ctx, "session_data")
		if err != nil {
			return err
		}
		mf := obj.(*db.Folder)
		if mf.Partition() != "sessiondata" || mf.Path() != "/session_data" {
			return fmt.Errorf("mounted folder partition %q path %q", mf.Partition(), mf.Path())
		}
		sessions, err := mf.Get(ctx, "sessions")
		if err != nil {
			return err
		}
		up, err := sessions.(*db.Folder).Parent(ctx)
		if err != nil {
			return err
		}
		top, err := up.Parent(ctx)
		if err != nil {
			return err
		}
		if top.Partition() != "main" || top.Path() != "/" {
			return fmt.Errorf("parent of mount: partition %q path %q", top.Partition(), top.Path())
		}
		s, err := db.GetAs[*Session](ctx, tx, "/session_data/sessions/abc")
		if err != nil {
			return err
		}
		if s.Partition() != "sessiondata" || s.Path() != "/session_data/sessions/abc" {
			return fmt.Errorf("session partition %q path %q", s.Partition(), s.Path())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The mount point itself is not the tree's to change.
	_, err := d.Update(ctx, func(tx *db.Tx) error { return tx.Delete(ctx, "/session_data") })
	if !errors.Is(err, db.ErrMountPoint) {
		t.Fatalf("delete mount point: %v", err)
	}
	_, err = d.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/session_data", db.NewDocument(nil)) })
	if !errors.Is(err, db.ErrMountPoint) {
		t.Fatalf("put on mount point: %v", err)
	}

	// A second node opening the same cluster finds the folder and data.
	d2 := openDB(t, c.main, db.Options{
		Mounts:        []db.Mount{sessionMount("sessiondata", "session_data")},
		OpenPartition: c.openPartition,
	})
	if err := d2.View(ctx, func(tx *db.Tx) error {
		_, err := db.GetAs[*Session](ctx, tx, "/session_data/sessions/abc")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCrossPartitionCommitAtomic: a transaction changing both partitions
// commits in both; when one partition's vote conflicts, neither changes.
func TestCrossPartitionCommitAtomic(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "sessiondata")
	opts := db.Options{
		Mounts:        []db.Mount{sessionMount("sessiondata", "/deep/er")},
		OpenPartition: c.openPartition,
	}
	d := openDB(t, c.main, opts)
	other := openDB(t, c.main, opts)
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		if err := tx.Put(ctx, "/a", db.NewDocument(map[string]any{"v": 0})); err != nil {
			return err
		}
		return tx.Put(ctx, "/session_data/b", db.NewDocument(map[string]any{"v": 0}))
	}); err != nil {
		t.Fatal(err)
	}
	mainBefore, _ := c.main.LastTid(ctx)
	partBefore, _ := c.parts["sessiondata"].LastTid(ctx)

	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/a", "/session_data/b"} {
		doc, err := tx.Document(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		doc.Data["v"] = 1
	}
	// Another node changes the mounted document meanwhile.
	if _, err := other.Update(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/session_data/b")
		if err != nil {
			return err
		}
		doc.Data["v"] = 2
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	partMid, _ := c.parts["sessiondata"].LastTid(ctx)
	if _, err := tx.Commit(ctx); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("commit: %v", err)
	}
	if after, _ := c.main.LastTid(ctx); after != mainBefore {
		t.Fatal("main partition committed although the mounted one conflicted")
	}
	if after, _ := c.parts["sessiondata"].LastTid(ctx); after != partMid || partMid == partBefore {
		t.Fatalf("partition tids %v %v %v", partBefore, partMid, after)
	}

	// Through Update the same change retries and lands in both.
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		for _, p := range []string{"/a", "/session_data/b"} {
			doc, err := tx.Document(ctx, p)
			if err != nil {
				return err
			}
			doc.Data["v"] = doc.Data["v"].(int64) + 10
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := other.View(ctx, func(tx *db.Tx) error {
		a, err := tx.Document(ctx, "/a")
		if err != nil {
			return err
		}
		b, err := tx.Document(ctx, "/session_data/b")
		if err != nil {
			return err
		}
		if a.Data["v"] != int64(10) || b.Data["v"] != int64(12) {
			return fmt.Errorf("a=%v b=%v", a.Data["v"], b.Data["v"])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMountFailureAndRetry: a failing mount function leaves its path
// answering a *MountError naming the mount while the rest of the tree
// works; the background retry mounts it later.
func TestMountFailureAndRetry(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "sessiondata")
	var healed atomic.Bool
	failing := db.Mount{
		Name: "flaky",
		Path: "/x/flaky",
		Resolve: func(context.Context) (db.Target, error) {
			if !healed.Load() {
				return db.Target{}, errors.New("rule engine offline")
			}
			return db.Target{Partition: "sessiondata", Folder: "f"}, nil
		},
	}
	d := openDB(t, c.main, db.Options{
		Mounts:        []db.Mount{failing},
		OpenPartition: c.openPartition,
		MountRetryMin: 20 * time.Millisecond,
		MountRetryMax: 40 * time.Millisecond,
	})
	ms := d.Mounts()
	if ms[0].State != db.MountFailed || ms[0].Err == "" || ms[0].NextRetry.IsZero() {
		t.Fatalf("status %+v", ms[0])
	}
	_, err := d.Update(ctx, func(tx *db.Tx) error {
		_, err := tx.Get(ctx, "/x/flaky/thing")
		return err
	})
	var me *db.MountError
	if !errors.As(err, &me) || me.Name != "flaky" || !errors.Is(err, db.ErrMountUnavailable) {
		t.Fatalf("path under failed mount: %v", err)
	}
	// The rest of the tree works, and lists the mount point.
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		if err := tx.Put(ctx, "/x/ok", db.NewDocument(nil)); err != nil {
			return err
		}
		f, err := tx.Folder(ctx, "/x")
		if err != nil {
			return err
		}
		names, err := f.Names(ctx)
		if !slices.Equal(names, []string{"flaky", "ok"}) {
			return fmt.Errorf("names %v %v", names, err)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	healed.Store(true)
	waitMount(t, d, "flaky", db.MountReady)
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/x/flaky/thing", db.NewCounter(1))
	}); err != nil {
		t.Fatal(err)
	}
	if got := d.Mounts()[0]; got.Attempts < 2 || got.Err != "" {
		t.Fatalf("status after retry %+v", got)
	}
}

// TestPartitionUnreachable: OpenPartition failing is reported like a
// failing mount function and retried.
func TestPartitionUnreachable(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "sessiondata")
	c.down.Store(true)
	d := openDB(t, c.main, db.Options{
		Mounts:        []db.Mount{sessionMount("sessiondata", "session_data")},
		OpenPartition: c.openPartition,
		MountRetryMin: 10 * time.Millisecond,
		MountRetryMax: 20 * time.Millisecond,
	})
	st := d.Mounts()[0]
	if st.State != db.MountFailed || st.Target.Partition != "sessiondata" {
		t.Fatalf("status %+v", st)
	}
	err := d.View(ctx, func(tx *db.Tx) error {
		_, err := tx.Folder(ctx, "/session_data")
		return err
	})
	if !errors.Is(err, db.ErrMountUnavailable) || !errorsContain(err, `mount "session_data"`, "connection refused") {
		t.Fatalf("err %v", err)
	}
	c.down.Store(false)
	waitMount(t, d, "session_data", db.MountReady)
	if err := d.View(ctx, func(tx *db.Tx) error {
		_, err := tx.Folder(ctx, "/session_data")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMountsSharePartition: two mounts into one partition connect once.
func TestMountsSharePartition(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "sessiondata")
	m2 := sessionMount("sessiondata", "other")
	m2.Name, m2.Path = "other", "/a/b/other"
	d := openDB(t, c.main, db.Options{
		Mounts:        []db.Mount{sessionMount("sessiondata", "session_data"), m2},
		OpenPartition: c.openPartition,
	})
	if n := c.opens.Load(); n != 1 {
		t.Fatalf("OpenPartition called %d times", n)
	}
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		if err := tx.Put(ctx, "/a/b/other/doc", db.NewDocument(nil)); err != nil {
			return err
		}
		return tx.Put(ctx, "/session_data/doc", db.NewDocument(nil))
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.View(ctx, func(tx *db.Tx) error {
		a, err := tx.Document(ctx, "/a/b/other/doc")
		if err != nil {
			return err
		}
		b, err := tx.Document(ctx, "/session_data/doc")
		if err != nil {
			return err
		}
		ao, _ := a.Oid()
		bo, _ := b.Oid()
		if ao == bo {
			return errors.New("two mounts resolved to one object")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Bad mount configurations fail Open.
	for _, bad := range [][]db.Mount{
		{{Name: "root", Path: "/", Resolve: sessionMount("x", "").Resolve}},
		{{Name: "nil", Path: "/n"}},
		{sessionMount("sessiondata", "a"), sessionMount("sessiondata", "b")},
	} {
		if _, err := db.Open(ctx, c.main, db.Options{Mounts: bad, OpenPartition: c.openPartition}); err == nil {
			t.Fatalf("open accepted mounts %+v", bad)
		}
	}
}

// TestConcurrentMountedFolderAdds: sessions added concurrently through the
// mount from two nodes all land.
func TestConcurrentMountedFolderAdds(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "sessiondata")
	var nodes [2]*db.DB
	for i := range nodes {
		nodes[i] = openDB(t, c.main, db.Options{
			Mounts:        []db.Mount{sessionMount("sessiondata", "session_data")},
			OpenPartition: c.openPartition,
			MaxAttempts:   50,
		})
	}
	if _, err := nodes[0].Update(ctx, func(tx *db.Tx) error {
		_, err := tx.MkdirAll(ctx, "/session_data/sessions")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	const workers, per = 6, 30
	var mu sync.Mutex
	want := 0
	err := runParallel(workers, func(w int) error {
		for i := range per {
			id := fmt.Sprintf("s%d-%d", w, i)
			if _, err := nodes[w%2].Update(ctx, func(tx *db.Tx) error {
				return tx.Create(ctx, "/session_data/sessions/"+id, &Session{ID: id})
			}); err != nil {
				return err
			}
			mu.Lock()
			want++
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].View(ctx, func(tx *db.Tx) error {
		f, err := tx.Folder(ctx, "/session_data/sessions")
		if err != nil {
			return err
		}
		n, err := f.Len(ctx)
		if err == nil && n != want {
			err = fmt.Errorf("%d sessions, want %d", n, want)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func waitMount(t *testing.T, d *db.DB, name string, want db.MountState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range d.Mounts() {
			if m.Name == name && m.State == want {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("mount %q never reached %s: %+v", name, want, d.Mounts())
}

func errorsContain(err error, subs ...string) bool {
	for _, s := range subs {
		if !contains(err.Error(), s) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestCloseStopsMountRetries: Close returns promptly while a failed mount
// waits for its next retry, and the storages OpenPartition returned are
// closed.
func TestCloseStopsMountRetries(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "sessiondata")
	var closed atomic.Int32
	d, err := db.Open(ctx, c.main, db.Options{
		Mounts: []db.Mount{
			{Name: "never", Path: "/never", Resolve: func(context.Context) (db.Target, error) {
				return db.Target{}, errors.New("down")
			}},
			sessionMount("sessiondata", "session_data"),
		},
		OpenPartition: func(ctx context.Context, name, server string) (storage.Storage, error) {
			st, err := c.openPartition(ctx, name, server)
			if err != nil {
				return nil, err
			}
			return closeCounter{st, &closed}, nil
		},
		MountRetryMin: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the mount retry")
	}
	if closed.Load() != 1 {
		t.Fatalf("%d partition storages closed, want 1", closed.Load())
	}
	if _, err := d.Begin(ctx); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("begin after close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

type closeCounter struct {
	storage.Storage
	n *atomic.Int32
}

func (c closeCounter) Close() error { c.n.Add(1); return nil }
