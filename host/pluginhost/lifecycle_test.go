package pluginhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/sdk"
)

const helperEnv = "ZHOST_PLUGINHOST_TEST_HOST"

// TestMain lets the test binary play a zhost host in a child process, so
// a test can kill a host by SIGKILL and look for its plugins.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(runHelperHost(dir))
	}
	os.Exit(m.Run())
}

// runHelperHost opens a filestorage and a memory storage through the
// built-in plugin, prints the plugin's pid and waits to be killed.
func runHelperHost(dir string) int {
	m, err := NewManager(Options{ZhostPath: os.Getenv("ZHOST_BIN"), Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Debug})})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.OpenStorage(ctx, StorageSpec{Type: "filestorage", Name: "main", Config: hcl.Values{"path": filepath.Join(dir, "Data.fs")}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, _ := m.Plugin(BuiltinName)
	fmt.Printf("PID %d\n", p.Status().Pid)
	<-ctx.Done() // the test kills us long before
	return 0
}

// TestNoOrphansAfterHostKilled kills a host with SIGKILL (no cleanup runs
// in it) and checks that its plugin process goes away by itself.
func TestNoOrphansAfterHostKilled(t *testing.T) {
	t.Parallel()
	zhost := testbin.Zhost(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, "ZHOST_BIN="+zhost)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper host: %v\n%s", err, logs)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "PID %d", &pid); err != nil || pid == 0 {
		t.Fatalf("helper host said %q: %v\n%s", line, err, logs)
	}
	if !testbin.Alive(pid) {
		t.Fatalf("plugin %d is not running", pid)
	}
	if got := testbin.Children(cmd.Process.Pid); len(got) != 1 || got[0] != pid {
		t.Fatalf("host children = %v, want [%d]", got, pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, 10*time.Second, fmt.Sprintf("plugin %d to exit after its host was killed", pid), func() bool { return !testbin.Alive(pid) })

	// It closed its storage on the way out: the data file opens again
	// (its lock is free) and holds what it had.
	// (The lock is freed when the last thread of the exiting process has
	// released its files, a moment after the process shows as a zombie.)
	m, _ := newManager(t, Options{})
	var st storage.Storage
	waitFor(t, 5*time.Second, "the data file to open again", func() bool {
		st, err = m.OpenStorage(testCtx(t), StorageSpec{Type: "filestorage", Name: "main", Config: hcl.Values{"path": filepath.Join(dir, "Data.fs")}, InProcess: true})
		return err == nil
	})
	_ = st.Close()
}

// TestCloseStopsEverything checks that Manager.Close leaves no child
// process behind and that calls after Close fail cleanly.
func TestCloseStopsEverything(t *testing.T) {
	t.Parallel()
	m, err := NewManager(Options{ZhostPath: testbin.Zhost(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Add(Spec{Name: "custom-mount", Path: customMount(t)}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	st, err := m.OpenStorage(ctx, StorageSpec{Type: "memory", Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Describe(ctx, "custom-mount"); err != nil {
		t.Fatal(err)
	}
	pids := []int{pidOf(t, m, BuiltinName), pidOf(t, m, "custom-mount")}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if testbin.Alive(pid) {
			t.Fatalf("plugin %d still running after Close", pid)
		}
	}
	if _, err := st.Load(ctx, storage.RootOid); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("load after Close: %v", err)
	}
	if _, err := m.Describe(ctx, BuiltinName); !errors.Is(err, ErrClosed) {
		t.Fatalf("describe after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestPluginLogs checks that a plugin's hclog lines appear in the host's
// log under the plugin's name, at the level they were logged at, and that
// the plugin is told the host's level.
func TestPluginLogs(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	m, _ := newManager(t, Options{Logger: hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Info, Output: logs})})
	dir := t.TempDir()
	if err := m.Add(Spec{Name: "custom-mount", Path: customMount(t)}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := m.Resolve(ctx, "custom-mount", sdk.MountRequest{Function: "by_hash", Path: "/carts",
		Args: map[string]any{"key": "k", "partitions": []string{"a"}, "folder": "carts"}}); err != nil {
		t.Fatal(err)
	}
	// A backend that fails to open logs nothing itself; the plugin's
	// debug lines ("opened storage") must not reach an info-level host.
	if _, err := m.OpenStorage(ctx, StorageSpec{Type: "memory", Name: "quiet"}); err != nil {
		t.Fatal(err)
	}
	_ = dir
	waitFor(t, 5*time.Second, "the plugin's log line", func() bool {
		return strings.Contains(logs.String(), "[INFO]  host.custom-mount: mount resolved")
	})
	out := logs.String()
	if !strings.Contains(out, "partition=a") {
		t.Fatalf("log line lacks its fields:\n%s", out)
	}
	if strings.Contains(out, "opened storage") || strings.Contains(out, "[DEBUG]") {
		t.Fatalf("debug lines reached an info-level host log:\n%s", out)
	}
}

func TestMountFunctions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data, err := os.ReadFile(customMount(t))
	if err != nil {
		t.Fatal(err)
	}
	// Found in plugin_dir by name.
	if err := os.WriteFile(filepath.Join(dir, "zhost-plugin-custom-mount"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	m, _ := newManager(t, Options{PluginDir: dir})
	if err := m.Add(Spec{Name: "custom-mount", Where: "cluster.hcl:20"}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for _, tc := range []struct {
		plugin string
		req    sdk.MountRequest
		want   sdk.MountTarget
	}{
		{"", sdk.MountRequest{Function: "mount_partition", Path: "/session_data", Args: map[string]any{"partition": "sessiondata", "folder": "session_data"}},
			sdk.MountTarget{Partition: "sessiondata", Folder: "session_data"}},
		{"custom-mount", sdk.MountRequest{Function: "by_prefix", Path: "/archive/2026", Args: map[string]any{"rules": map[string]any{"/archive": "archive", "/archive/2026": "recent"}, "folder": "a"}},
			sdk.MountTarget{Partition: "recent", Folder: "a"}},
		{"custom-mount", sdk.MountRequest{Function: "by_prefix", Path: "/other", Args: map[string]any{"rules": map[string]string{"/archive": "archive"}, "default": "main", "folder": "a"}},
			sdk.MountTarget{Partition: "main", Folder: "a"}},
	} {
		got, err := m.Resolve(ctx, tc.plugin, tc.req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.plugin, tc.req.Function, err)
		}
		if got != tc.want {
			t.Fatalf("%s %s = %+v, want %+v", tc.plugin, tc.req.Function, got, tc.want)
		}
	}
	// by_hash is stable and spreads.
	seen := map[string]bool{}
	for i := range 20 {
		req := sdk.MountRequest{Function: "by_hash", Path: "/x", Args: map[string]any{"key": fmt.Sprint("user", i), "partitions": []any{"s0", "s1", "s2"}, "folder": "f"}}
		a, err := m.Resolve(ctx, "custom-mount", req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := m.Resolve(ctx, "custom-mount", req)
		if a != b {
			t.Fatalf("by_hash not stable: %+v then %+v", a, b)
		}
		seen[a.Partition] = true
	}
	if len(seen) < 2 {
		t.Fatalf("by_hash put 20 keys on %v", seen)
	}
	// Operator mistakes come back readable, matching ErrInvalid.
	for _, tc := range []struct {
		plugin string
		req    sdk.MountRequest
		want   string
	}{
		{"", sdk.MountRequest{Function: "mount_partition", Path: "/s", Args: map[string]any{"partition": "sessiondata"}}, `missing required arg "folder"`},
		{"", sdk.MountRequest{Function: "mount_partition", Path: "/s", Args: map[string]any{"partition": "a b", "folder": "f"}}, `only letters, digits`},
		{"", sdk.MountRequest{Function: "mount_partition", Path: "/s", Args: map[string]any{"partition": "p", "folder": "../up"}}, `'..'`},
		{"custom-mount", sdk.MountRequest{Function: "by_prefix", Path: "/other", Args: map[string]any{"rules": map[string]any{"/archive": "archive"}, "folder": "a"}}, `no rule matches mount path "/other"`},
		{"custom-mount", sdk.MountRequest{Function: "nope", Path: "/s"}, `unknown mount function "nope"`},
	} {
		_, err := m.Resolve(ctx, tc.plugin, tc.req)
		if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.req.Path) {
			t.Fatalf("%s %s: %v; want ErrInvalid mentioning %q and the mount path", tc.plugin, tc.req.Function, err, tc.want)
		}
	}
}

func TestInProcessOnlyForBuiltins(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t, Options{})
	ctx := testCtx(t)
	if _, err := m.OpenStorage(ctx, StorageSpec{Plugin: "custom-storage", Type: "jsonl", Name: "x", InProcess: true}); err == nil || !strings.Contains(err.Error(), "in_process") {
		t.Fatalf("in_process for an external plugin: %v", err)
	}
	if _, err := m.OpenStorage(ctx, StorageSpec{Type: "nosuch", Name: "x", InProcess: true}); !errors.Is(err, sdk.ErrUnknownBackend) {
		t.Fatalf("unknown built-in type in process: %v", err)
	}
	if _, err := m.OpenStorage(ctx, StorageSpec{Type: "nosuch", Name: "x"}); !errors.Is(err, sdk.ErrUnknownBackend) || !strings.Contains(err.Error(), "filestorage") {
		t.Fatalf("unknown built-in type: %v", err)
	}
	// A config error from the backend keeps its identity and names the
	// storage.
	_, err := m.OpenStorage(ctx, StorageSpec{Type: "packless", Name: "sessions", Config: hcl.Values{}})
	if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), `"sessions"`) || !strings.Contains(err.Error(), `"path"`) {
		t.Fatalf("bad config: %v", err)
	}
}
