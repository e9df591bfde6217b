package plugintest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/filestorage"
	"github.com/zhostdb/zhost/plugins/packless"
)

// networked is a client whose Close also stops the server and the plugin
// storage behind it, so the suite can reopen the same directory.
type networked struct {
	*client.Client
	srv *server.Server
	st  storage.Storage
}

func (n *networked) Close() error {
	err := n.Client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := n.srv.Shutdown(ctx); serr != nil && err == nil {
		err = serr
	}
	if cerr := n.st.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// TestConformanceThroughServer runs the storage contract's suite through
// client -> server -> backend plugin subprocess, for both built-in
// backends, including durability across reopen and crash recovery.
func TestConformanceThroughServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs plugin subprocesses")
	}
	mgr, err := pluginhost.NewManager(pluginhost.Options{ZhostPath: testbin.Zhost(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	cases := []struct {
		typ      string
		config   func(dir string) hcl.Values
		crash    func(dir string, mode storagetest.CrashMode) error
		collects bool
	}{
		{"filestorage", func(dir string) hcl.Values { return hcl.Values{"path": filepath.Join(dir, "Data.fs")} },
			func(dir string, mode storagetest.CrashMode) error {
				return filestorage.DamageTail(filepath.Join(dir, "Data.fs"), 7, mode == storagetest.CrashGarbage)
			}, false},
		{"packless", func(dir string) hcl.Values { return hcl.Values{"path": filepath.Join(dir, "db")} },
			func(dir string, mode storagetest.CrashMode) error {
				return packless.DamageJournal(filepath.Join(dir, "db"), 7, mode == storagetest.CrashGarbage)
			}, true},
	}
	for _, tc := range cases {
		t.Run(tc.typ, func(t *testing.T) {
			storagetest.Run(t, storagetest.Factory{
				Open: func(tb testing.TB, dir string) (storage.Storage, error) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					st, err := mgr.OpenStorage(ctx, pluginhost.StorageSpec{Type: tc.typ, Name: "conformance", Config: tc.config(dir)})
					if err != nil {
						return nil, err
					}
					srv, err := server.New(server.Options{
						Listen:     "127.0.0.1:0",
						Partitions: map[string]server.Partition{"main": {Storage: st}},
						DataDir:    filepath.Join(dir, "server"),
					})
					if err == nil {
						err = srv.Start(ctx)
					}
					if err != nil {
						st.Close()
						return nil, err
					}
					c, err := client.Open(ctx, client.Options{Addr: srv.Addr().String(), Partition: "main"})
					if err != nil {
						srv.Shutdown(ctx)
						st.Close()
						return nil, err
					}
					return &networked{Client: c, srv: srv, st: st}, nil
				},
				Persistent: true,
				Crash:      tc.crash,
				// The plugin reports what each commit collected
				// (storage.CollectingTxn over the Finish reply), so the
				// server's and the client's caches drop it too.
				CollectsGarbage: tc.collects,
			})
		})
	}
}
