package db_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"testing"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// pluginMount wires a mount block to a mount function run by the plugin
// host, the way the host layer does.
func pluginMount(m *pluginhost.Manager, name, plugin, function, path string, args map[string]any) db.Mount {
	return db.Mount{
		Name: name,
		Path: path,
		Resolve: func(ctx context.Context) (db.Target, error) {
			t, err := m.Resolve(ctx, plugin, sdk.MountRequest{Function: function, Path: path, Args: args})
			if err != nil {
				return db.Target{}, err
			}
			return db.Target{Partition: t.Partition, Folder: t.Folder, Server: t.Server}, nil
		},
	}
}

// TestWithPluginSubprocesses: every partition is a backend in a real
// plugin subprocess (the zhost binary serving its built-in plugin), served
// by a real server to real clients; the mounts are resolved by real mount
// functions: the built-in mount_partition, and examples/custom-mount's
// by_hash, which picks a partition by a rule. The test proves objects
// written under the custom mount land in the partition the rule picks.
func TestWithPluginSubprocesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts plugin subprocesses")
	}
	ctx := testCtx(t)
	m, err := pluginhost.NewManager(pluginhost.Options{ZhostPath: testbin.Zhost(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	mountBin := testbin.Build(t, "ZHOST_CUSTOM_MOUNT", "./examples/custom-mount", "zhost-plugin-custom-mount")
	if err := m.Add(pluginhost.Spec{Name: "custom-mount", Path: mountBin}); err != nil {
		t.Fatal(err)
	}

	// The main partition is a filestorage and the sessions partition a
	// packless store, as in the canonical cluster.hcl; the shards are
	// in-memory backends. Each runs in the built-in plugin's process.
	dir := t.TempDir()
	specs := map[string]pluginhost.StorageSpec{
		"main":        {Type: "filestorage", Name: "main", Config: hcl.Values{"path": filepath.Join(dir, "Data.fs"), "sync": "none"}},
		"sessiondata": {Type: "packless", Name: "sessions", Config: hcl.Values{"path": filepath.Join(dir, "sessions"), "sync": false}},
		"shard0":      {Type: "memory", Name: "shard0"},
		"shard1":      {Type: "memory", Name: "shard1"},
	}
	parts := map[string]storage.Storage{}
	for name, spec := range specs {
		st, err := m.OpenStorage(ctx, spec)
		if err != nil {
			t.Fatalf("open storage %s in plugin: %v", name, err)
		}
		parts[name] = st
	}
	addr := startServer(t, parts)

	shards := []string{"shard0", "shard1"}
	h := fnv.New64a()
	_, _ = h.Write([]byte("carts"))
	want := shards[h.Sum64()%uint64(len(shards))]
	other := shards[0]
	if want == other {
		other = shards[1]
	}
	mounts := []db.Mount{
		pluginMount(m, "session_data", "", "mount_partition", "/session_data",
			map[string]any{"partition": "sessiondata", "folder": "session_data"}),
		pluginMount(m, "carts", "custom-mount", "by_hash", "/shop/carts",
			map[string]any{"key": "carts", "partitions": []any{"shard0", "shard1"}, "folder": "carts/all"}),
		pluginMount(m, "archive", "custom-mount", "by_prefix", "/archive",
			map[string]any{"rules": map[string]any{"/nomatch": "shard0"}, "folder": "x"}),
	}
	d1, _ := networkNode(t, addr, "app1", mounts)
	d2, _ := networkNode(t, addr, "app2", mounts)

	status := map[string]db.MountStatus{}
	for _, s := range d1.Mounts() {
		status[s.Name] = s
	}
	if s := status["carts"]; s.State != db.MountReady || s.Target.Partition != want {
		t.Fatalf("carts mount %+v, want partition %s", s, want)
	}
	if s := status["session_data"]; s.State != db.MountReady {
		t.Fatalf("session_data mount %+v", s)
	}
	// A mount function that refuses its args: the mount fails with an
	// error naming it, the rest works.
	if s := status["archive"]; s.State != db.MountFailed || s.Err == "" {
		t.Fatalf("archive mount %+v", s)
	}
	_, err = d1.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/archive/x", db.NewDocument(nil)) })
	var me *db.MountError
	if !errors.As(err, &me) || me.Name != "archive" {
		t.Fatalf("write under failed mount: %v", err)
	}
	t.Logf("failed mount as the application sees it: %v", err)

	// Write through both working mounts and the main tree in one
	// transaction (two-phase commit across three partitions).
	_, err = d1.Update(ctx, func(tx *db.Tx) error {
		if err := tx.Put(ctx, "/shop/carts/c1", db.NewDocument(map[string]any{"items": []any{"pen"}})); err != nil {
			return err
		}
		if err := tx.Put(ctx, "/session_data/s1", &Session{ID: "s1"}); err != nil {
			return err
		}
		return tx.Put(ctx, "/shop/orders", db.NewCounter(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Update returns the main partition's tid; wait for every partition
	// the transaction wrote, taking their newest tids from the backends.
	for _, part := range []string{"main", want, "sessiondata"} {
		last, err := parts[part].LastTid(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d2.WaitForTid(ctx, part, last); err != nil {
			t.Fatal(err)
		}
	}
	// Read back from the other node.
	if err := d2.View(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/shop/carts/c1")
		if err != nil {
			return err
		}
		if doc.Partition() != want {
			return fmt.Errorf("cart read from partition %q, want %q", doc.Partition(), want)
		}
		_, err = db.GetAs[*Session](ctx, tx, "/session_data/s1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The cart's records are in the partition the rule picked, under the
	// folder the function named, and nowhere else.
	inPartition := func(name, path string) bool {
		d := openDB(t, parts[name], db.Options{MainPartition: name})
		var found bool
		if err := d.View(ctx, func(tx *db.Tx) error {
			var err error
			found, err = tx.Exists(ctx, path)
			return err
		}); err != nil {
			t.Fatalf("look in %s: %v", name, err)
		}
		return found
	}
	if !inPartition(want, "/carts/all/c1") {
		t.Fatalf("cart not in partition %s", want)
	}
	if inPartition(other, "/carts/all/c1") || inPartition("main", "/shop/carts/c1") {
		t.Fatal("cart found outside the partition the rule picked")
	}
	if !inPartition("sessiondata", "/session_data/s1") {
		t.Fatal("session not in the sessions partition")
	}

	t.Run("counter over two clients", func(t *testing.T) {
		checkCounterIncrements(t, [2]*db.DB{d1, d2}, "/shop/carts/hits")
	})
	t.Run("documents in filestorage", func(t *testing.T) {
		checkDocumentConflictsSerialize(t, [2]*db.DB{d1, d2}, "/shop/doc")
	})
	t.Run("folder adds over two clients", func(t *testing.T) {
		checkConcurrentFolderAdds(t, [2]*db.DB{d1, d2}, "/session_data/sessions")
	})
}
