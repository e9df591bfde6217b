package db_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
)

// startServer serves the given partitions on a free loopback port.
func startServer(t testing.TB, parts map[string]storage.Storage) string {
	t.Helper()
	ps := map[string]server.Partition{}
	for name, st := range parts {
		ps[name] = server.Partition{Storage: st}
	}
	srv, err := server.New(server.Options{Listen: "127.0.0.1:0", Partitions: ps})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv.Addr().String()
}

// networkNode opens a DB the way an application node does: one connection
// to the server, the main partition on it, and mounted partitions opened
// on the same connection by OpenPartition.
func networkNode(t *testing.T, addr, name string, mounts []db.Mount) (*db.DB, *client.Client) {
	t.Helper()
	ctx := testCtx(t)
	conn, err := client.Dial(ctx, client.ConnOptions{Addr: addr, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	main, err := conn.Open(ctx, "main", client.PartitionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = main.Close() })
	d := openDB(t, main, db.Options{
		Mounts:      mounts,
		MaxAttempts: 50,
		OpenPartition: func(ctx context.Context, partition, server string) (storage.Storage, error) {
			if server != "" {
				return nil, fmt.Errorf("partition %q: other servers not wired in this test: %w", partition, storage.ErrNotSupported)
			}
			return conn.Open(ctx, partition, client.PartitionOptions{})
		},
		Meta: storage.TxMeta{Extension: map[string]string{"node": name}},
	})
	return d, main
}

// TestOverNetwork runs the proof through a real server and real
// clients: bootstrap of the mount folder on first use, cross-mount
// traversal, concurrent folder adds from two clients, counter increments
// from many goroutines over two clients, conflicting document writes.
func TestOverNetwork(t *testing.T) {
	ctx := testCtx(t)
	mainSt, sessSt := newMem(t), newMem(t)
	addr := startServer(t, map[string]storage.Storage{"main": mainSt, "sessiondata": sessSt})
	mounts := []db.Mount{sessionMount("sessiondata", "session_data")}

	if last, _ := sessSt.LastTid(ctx); last != storage.ZeroTid {
		t.Fatal("sessions partition not empty before the first node")
	}
	d1, c1 := networkNode(t, addr, "app1", mounts)
	d2, _ := networkNode(t, addr, "app2", mounts)
	nodes := [2]*db.DB{d1, d2}

	// Bootstrap: the folder exists in the partition without any manual step.
	direct := openDB(t, sessSt, db.Options{MainPartition: "sessiondata"})
	if err := direct.View(ctx, func(tx *db.Tx) error {
		_, err := tx.Folder(ctx, "/session_data")
		return err
	}); err != nil {
		t.Fatalf("mount folder not bootstrapped: %v", err)
	}
	for _, d := range nodes {
		if m := d.Mounts()[0]; m.State != db.MountReady {
			t.Fatalf("mount %+v", m)
		}
	}

	// Cross-mount traversal from one node, read back on the other.
	tid, err := d1.Update(ctx, func(tx *db.Tx) error {
		f, err := tx.MkdirAll(ctx, "/session_data/sessions")
		if err != nil {
			return err
		}
		return f.Put(ctx, "s1", &Session{ID: "s1", Data: map[string]any{"user": "ann"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.WaitForTid(ctx, "sessiondata", tid); err != nil {
		t.Fatal(err)
	}
	if err := d2.View(ctx, func(tx *db.Tx) error {
		s, err := db.GetAs[*Session](ctx, tx, "/session_data/sessions/s1")
		if err != nil {
			return err
		}
		if s.Data["user"] != "ann" || s.Partition() != "sessiondata" {
			return fmt.Errorf("session %+v in %q", s.Data, s.Partition())
		}
		p, err := tx.Folder(ctx, "/session_data/sessions")
		if err != nil {
			return err
		}
		up, err := p.Parent(ctx)
		if err != nil {
			return err
		}
		root, err := up.Parent(ctx)
		if err != nil {
			return err
		}
		names, err := root.Names(ctx)
		if err != nil {
			return err
		}
		if root.Partition() != "main" || !slices.Contains(names, "session_data") {
			return fmt.Errorf("root %q names %v", root.Partition(), names)
		}
		return nil
	}); err != nil {
		t.Fatalf("after tid %v: %v", tid, err)
	}
	// The session's record is in the sessions partition.
	if err := direct.View(ctx, func(tx *db.Tx) error {
		_, err := db.GetAs[*Session](ctx, tx, "/session_data/sessions/s1")
		return err
	}); err != nil {
		t.Fatal(err)
	}

	t.Run("folder adds", func(t *testing.T) { checkConcurrentFolderAdds(t, nodes, "/box") })
	t.Run("mounted folder adds", func(t *testing.T) { checkConcurrentFolderAdds(t, nodes, "/session_data/box") })
	t.Run("counter", func(t *testing.T) { checkCounterIncrements(t, nodes, "/hits") })
	t.Run("mounted counter", func(t *testing.T) { checkCounterIncrements(t, nodes, "/session_data/hits") })
	t.Run("documents", func(t *testing.T) { checkDocumentConflictsSerialize(t, nodes, "/doc") })

	// The other node's commits reached this node's object cache as
	// invalidations.
	if s := d1.Stats(); s.Invalidated == 0 {
		t.Errorf("no invalidation reached the object cache: %+v", s)
	}
	// Read-your-writes across nodes: after WaitForTid, a new transaction
	// on the other node sees the commit.
	tid, err = d2.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/ryw", db.NewDocument(map[string]any{"v": 1}))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.WaitForTid(ctx, tid); err != nil {
		t.Fatal(err)
	}
	if err := d1.View(ctx, func(tx *db.Tx) error {
		_, err := tx.Document(ctx, "/ryw")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestOverNetworkPartitionMissing: a mount naming a partition the server
// does not serve fails with a clear error naming the mount; the rest of
// the tree works.
func TestOverNetworkPartitionMissing(t *testing.T) {
	ctx := testCtx(t)
	addr := startServer(t, map[string]storage.Storage{"main": newMem(t)})
	d, _ := networkNode(t, addr, "app1", []db.Mount{sessionMount("nosuch", "session_data")})
	m := d.Mounts()[0]
	if m.State != db.MountFailed || m.Err == "" {
		t.Fatalf("mount %+v", m)
	}
	err := d.View(ctx, func(tx *db.Tx) error {
		_, err := tx.Get(ctx, "/session_data/x")
		return err
	})
	var me *db.MountError
	if !errors.As(err, &me) || me.Name != "session_data" {
		t.Fatalf("err %v", err)
	}
	t.Logf("error as the application sees it: %v", err)
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/fine", db.NewDocument(nil))
	}); err != nil {
		t.Fatal(err)
	}
}
