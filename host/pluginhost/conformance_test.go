package pluginhost

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zhostdb/zhost/examples/custom-storage/jsonl"
	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/filestorage"
	"github.com/zhostdb/zhost/plugins/packless"
)

// builtinCases are the built-in backend types, each with how the suite
// opens it in a directory and how it damages it.
var builtinCases = []struct {
	typ        string
	config     func(dir string) hcl.Values
	persistent bool
	crash      func(dir string, mode storagetest.CrashMode) error
	collects   bool
}{
	{
		typ:        "filestorage",
		config:     func(dir string) hcl.Values { return hcl.Values{"path": filepath.Join(dir, "Data.fs")} },
		persistent: true,
		crash: func(dir string, mode storagetest.CrashMode) error {
			return filestorage.DamageTail(filepath.Join(dir, "Data.fs"), 1500, mode == storagetest.CrashGarbage)
		},
	},
	{
		typ:        "packless",
		config:     func(dir string) hcl.Values { return hcl.Values{"path": dir} },
		persistent: true,
		crash: func(dir string, mode storagetest.CrashMode) error {
			return packless.DamageJournal(dir, 1500, mode == storagetest.CrashGarbage)
		},
		collects: true,
	},
	{
		typ:    "memory",
		config: func(string) hcl.Values { return hcl.Values{} },
	},
}

// TestConformance runs the storage conformance suite against every
// built-in backend through the real subprocess boundary (the zhost binary
// re-executed as `zhost plugin serve builtin`) and in process, as a
// storage block with in_process = true opens them.
func TestConformance(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t, Options{})
	for _, tc := range builtinCases {
		for _, inProcess := range []bool{false, true} {
			name := tc.typ + "/subprocess"
			if inProcess {
				name = tc.typ + "/in_process"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				if inProcess && testing.Short() {
					t.Skip("the backend's own package runs the suite in process")
				}
				storagetest.Run(t, storagetest.Factory{
					Open: func(tb testing.TB, dir string) (storage.Storage, error) {
						return m.OpenStorage(testCtx(tb), StorageSpec{Type: tc.typ, Name: "conformance", Config: tc.config(dir), InProcess: inProcess})
					},
					Persistent:      tc.persistent,
					Crash:           tc.crash,
					CollectsGarbage: tc.collects,
				})
			})
		}
	}
}

// TestConformanceCustomStorage runs the suite against the example external
// backend, a binary built only against plugins/sdk.
func TestConformanceCustomStorage(t *testing.T) {
	t.Parallel()
	bin := testbin.Build(t, "ZHOST_CUSTOM_STORAGE", "./examples/custom-storage", "zhost-plugin-custom-storage")
	m, _ := newManager(t, Options{})
	if err := m.Add(Spec{Name: "custom-storage", Path: bin, Where: "cluster.hcl:3"}); err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, storagetest.Factory{
		Open: func(tb testing.TB, dir string) (storage.Storage, error) {
			// cluster.hcl names the type after the plugin block.
			return m.OpenStorage(testCtx(tb), StorageSpec{Plugin: "custom-storage", Type: "custom-storage", Name: "notes",
				Config: hcl.Values{"path": filepath.Join(dir, "notes.jsonl"), "sync": false}})
		},
		Persistent: true,
		Crash: func(dir string, mode storagetest.CrashMode) error {
			return jsonl.Crash(filepath.Join(dir, "notes.jsonl"), mode == storagetest.CrashTruncate)
		},
	})
}

// TestConformanceBusyPoll runs the suite against filestorage through the
// subprocess boundary with busy-polling reads on both ends of the plugin
// connection (the host's dial and, told through sdk.EnvBusyPoll, the
// plugin's gRPC server), and checks that the plugin applied it.
func TestConformanceBusyPoll(t *testing.T) {
	t.Parallel()
	m, logs := newManager(t, Options{BusyPoll: 50 * time.Microsecond})
	tc := builtinCases[0]
	storagetest.Run(t, storagetest.Factory{
		Open: func(tb testing.TB, dir string) (storage.Storage, error) {
			return m.OpenStorage(testCtx(tb), StorageSpec{Type: tc.typ, Name: "conformance", Config: tc.config(dir)})
		},
		Persistent: tc.persistent,
		Crash:      tc.crash,
	})
	if !strings.Contains(logs.String(), "reads from the host busy-poll") || !strings.Contains(logs.String(), "50µs") {
		t.Errorf("the plugin did not log its busy-poll window; host log:\n%s", logs.String())
	}
}
