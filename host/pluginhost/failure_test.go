package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/sdk"
)

func customMount(t testing.TB) string {
	return testbin.Build(t, "ZHOST_CUSTOM_MOUNT", "./examples/custom-mount", "zhost-plugin-custom-mount")
}

// wantStartError checks that err matches sentinel and names the plugin
// and its config location.
func wantStartError(t *testing.T, err error, sentinel error, name, where string, more ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error matching %v, got nil", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error does not match %v: %v", sentinel, err)
	}
	msg := err.Error()
	for _, s := range append([]string{`plugin "` + name + `"`, where}, more...) {
		if !strings.Contains(msg, s) {
			t.Fatalf("error lacks %q: %v", s, msg)
		}
	}
	t.Logf("error as the operator sees it: %v", err)
}

func TestMissingBinary(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t, Options{})
	missing := filepath.Join(t.TempDir(), "zhost-plugin-nope")
	err := m.Add(Spec{Name: "nope", Path: missing, Where: "cluster.hcl:7"})
	wantStartError(t, err, ErrBinaryNotFound, "nope", "cluster.hcl:7", missing)

	// Found through plugin_dir, then removed before it starts.
	dir := t.TempDir()
	m2, _ := newManager(t, Options{PluginDir: dir})
	if err := m2.Add(Spec{Name: "gone", Where: "cluster.hcl:9"}); !errors.Is(err, ErrBinaryNotFound) || !strings.Contains(err.Error(), filepath.Join(dir, "zhost-plugin-gone")) {
		t.Fatalf("plugin_dir lookup of a missing binary: %v", err)
	}
	bin := filepath.Join(dir, "zhost-plugin-gone")
	data, err := os.ReadFile(customMount(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m2.Add(Spec{Name: "gone", Where: "cluster.hcl:9"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	_, err = m2.Describe(testCtx(t), "gone")
	wantStartError(t, err, ErrBinaryNotFound, "gone", "cluster.hcl:9")
}

func TestBadChecksum(t *testing.T) {
	t.Parallel()
	bin := customMount(t)
	good, err := FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newManager(t, Options{})
	bad := strings.Repeat("0", 64)
	if err := m.Add(Spec{Name: "custom-mount", Path: bin, SHA256: bad, Where: "cluster.hcl:12"}); err != nil {
		t.Fatal(err)
	}
	_, err = m.Describe(testCtx(t), "custom-mount")
	wantStartError(t, err, ErrChecksum, "custom-mount", "cluster.hcl:12", good, bad)

	// A malformed sha256 is refused at Add.
	err = m.Add(Spec{Name: "other", Path: bin, SHA256: "abc", Where: "cluster.hcl:20"})
	wantStartError(t, err, ErrChecksum, "other", "cluster.hcl:20")

	// The right one starts.
	if err := m.Add(Spec{Name: "right", Path: bin, SHA256: strings.ToUpper(good)}); err != nil {
		t.Fatal(err)
	}
	d, err := m.Describe(testCtx(t), "right")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "custom-mount" || len(d.Functions) != 2 {
		t.Fatalf("description = %+v", d)
	}
}

// TestChecksumCheckedBeforeRestart replaces the binary while the plugin
// runs; the restart after a crash must refuse the new binary.
func TestChecksumCheckedBeforeRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "zhost-plugin-swapped")
	data, err := os.ReadFile(customMount(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	sum, _ := FileSHA256(bin)
	m, logs := newManager(t, Options{MinBackoff: 20 * time.Millisecond, MaxCrashes: 2})
	if err := m.Add(Spec{Name: "swapped", Path: bin, SHA256: sum, Where: "cluster.hcl:4"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Describe(testCtx(t), "swapped"); err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, m, "swapped")
	// Replace the file (a new inode; the running process keeps the old).
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, append(data, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p, _ := m.Plugin("swapped")
	waitFor(t, 10*time.Second, "the plugin to be marked failed", func() bool { return p.Status().State == "failed" })
	_, err = m.Describe(testCtx(t), "swapped")
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("describe after a refused restart: %v", err)
	}
	if !strings.Contains(logs.String(), "sha256") {
		t.Fatalf("the refused restart is not logged:\n%s", logs)
	}
}

func TestJunkOnStdout(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t, Options{})
	bin := script(t, "zhost-plugin-chatty", `echo "hello from a script that is no plugin"; sleep 5`)
	if err := m.Add(Spec{Name: "chatty", Path: bin, Where: "cluster.hcl:30"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := m.Describe(testCtx(t), "chatty")
	wantStartError(t, err, ErrHandshake, "chatty", "cluster.hcl:30", "hello from a script that is no plugin", "stdout")
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("junk on stdout took %s to report", d)
	}
}

func TestSlowHandshake(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t, Options{StartTimeout: 300 * time.Millisecond})
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	bin := script(t, "zhost-plugin-slow", `echo $$ > `+pidFile+`; exec sleep 30`)
	if err := m.Add(Spec{Name: "slow", Path: bin, Where: "cluster.hcl:40"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := m.Describe(testCtx(t), "slow")
	wantStartError(t, err, ErrHandshake, "slow", "cluster.hcl:40", "300ms")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("slow handshake took %s to report", d)
	}
	// The process that never answered is not left behind.
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmtSscan(strings.TrimSpace(string(b)), &pid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the slow plugin to be killed", func() bool { return !testbin.Alive(pid) })
}

func TestExitBeforeHandshake(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t, Options{})
	bin := script(t, "zhost-plugin-dies", `echo "cannot open config" >&2; exit 3`)
	if err := m.Add(Spec{Name: "dies", Path: bin, Where: "cluster.hcl:50"}); err != nil {
		t.Fatal(err)
	}
	_, err := m.Describe(testCtx(t), "dies")
	wantStartError(t, err, ErrHandshake, "dies", "cluster.hcl:50", "exited")
}

// TestCrashAndRestart kills the plugin process while a call waits inside
// it: the call fails at once naming the plugin, the host restarts the
// plugin with backoff and reopens the storage; after MaxCrashes crashes in
// a row the plugin is marked failed and calls fail without a restart.
func TestCrashAndRestart(t *testing.T) {
	t.Parallel()
	m, logs := newManager(t, Options{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxCrashes: 3})
	ctx := testCtx(t)
	st, err := m.OpenStorage(ctx, StorageSpec{Type: "memory", Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	// txn1 holds the commit lock; txn2's vote waits for it in the plugin.
	txn1, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn1.Store(ctx, storage.Record{Oid: storage.RootOid, Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := txn1.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	txn2, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	voteErr := make(chan error, 1)
	go func() {
		vctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		voteErr <- txn2.Vote(vctx)
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-voteErr:
		t.Fatalf("vote did not wait for the commit lock: %v", err)
	default:
	}

	pid := pidOf(t, m, BuiltinName)
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-voteErr:
		if !errors.Is(err, sdk.ErrPluginUnavailable) || !strings.Contains(err.Error(), `plugin "builtin"`) {
			t.Fatalf("vote in flight: %v", err)
		}
		if d := time.Since(killed); d > 2*time.Second {
			t.Fatalf("vote in flight took %s to fail", d)
		}
		t.Logf("call in flight failed after %s: %v", time.Since(killed), err)
	case <-time.After(10 * time.Second):
		t.Fatal("a call in flight hangs after the plugin crashed")
	}
	// The transaction of the dead process is gone.
	if _, err := txn1.Finish(ctx); !errors.Is(err, sdk.ErrPluginUnavailable) {
		t.Fatalf("finish of a transaction of the crashed process: %v", err)
	}
	_ = txn1.Abort(ctx)
	_ = txn2.Abort(ctx)

	p, _ := m.Plugin(BuiltinName)
	waitFor(t, 10*time.Second, "the restart", func() bool { s := p.Status(); return s.State == "running" && s.Restarts == 1 })
	if pid2 := pidOf(t, m, BuiltinName); pid2 == pid {
		t.Fatal("same pid after restart")
	}
	// The storage was reopened in the new process (a memory storage
	// starts empty again).
	if _, err := st.Load(ctx, storage.RootOid); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("load after restart: %v", err)
	}
	if _, err := storageCommit(ctx, st, []byte("b")); err != nil {
		t.Fatalf("commit after restart: %v", err)
	}
	for _, want := range []string{"plugin crashed; restarting", "plugin restarted", "reopened storage after plugin restart"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}

	// Two more crashes in a row: failed, not restarted again.
	for i := 2; i <= 3; i++ {
		pid := pidOf(t, m, BuiltinName)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the crash to be seen", func() bool { return !testbin.Alive(pid) && p.Status().State != "running" })
		if i < 3 {
			waitFor(t, 10*time.Second, "the restart", func() bool { return p.Status().State == "running" })
		}
	}
	waitFor(t, 5*time.Second, "failed", func() bool { return p.Status().State == "failed" })
	start := time.Now()
	_, err = st.Load(ctx, storage.RootOid)
	if !errors.Is(err, ErrFailed) || !errors.Is(err, sdk.ErrPluginUnavailable) || !strings.Contains(err.Error(), `plugin "builtin"`) {
		t.Fatalf("load on a failed plugin: %v", err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatalf("a failed plugin made the call wait %s", time.Since(start))
	}
	time.Sleep(300 * time.Millisecond) // longer than MaxBackoff: no restart may happen
	if s := p.Status(); s.State != "failed" || s.Restarts != 2 {
		t.Fatalf("after failing: %+v", s)
	}
	if !strings.Contains(logs.String(), "marked failed") {
		t.Fatalf("log lacks the failure:\n%s", logs)
	}
}

func storageCommit(ctx context.Context, st storage.Storage, data []byte) (storage.Tid, error) {
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		return 0, err
	}
	defer txn.Abort(ctx)
	if err := txn.Store(ctx, storage.Record{Oid: storage.RootOid, Data: data}); err != nil {
		return 0, err
	}
	if err := txn.Vote(ctx); err != nil {
		return 0, err
	}
	return txn.Finish(ctx)
}

// TestLargeRecordThroughPlugin pushes a 64 MiB record through the real
// subprocess boundary, far over gRPC's 4 MiB default, both ways.
func TestLargeRecordThroughPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB through a subprocess")
	}
	t.Parallel()
	m, _ := newManager(t, Options{})
	ctx := testCtx(t)
	st, err := m.OpenStorage(ctx, StorageSpec{Type: "memory", Name: "big"})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i>>10) ^ byte(i)
	}
	tid, err := storageCommit(ctx, st, big)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.Load(ctx, storage.RootOid)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Serial != tid || !bytes.Equal(rec.Data, big) {
		t.Fatalf("64 MiB record came back as %d bytes", len(rec.Data))
	}
}

// TestPluginEnvBeatsHostEnv: what the host sets for a plugin (the plugin
// block's env, the log level, the busy-poll window, off included) wins
// over a variable of the same name in the host's own environment, which
// go-plugin would otherwise append last. The plugin is a script that
// records its environment and then serves the built-in plugin.
func TestPluginEnvBeatsHostEnv(t *testing.T) {
	t.Setenv("ZHOST_TEST_PLUGIN_VAR", "from-host")
	t.Setenv(sdk.EnvBusyPoll, "50us")
	t.Setenv("ZHOST_TEST_HOST_ONLY", "inherited")
	m, _ := newManager(t, Options{})
	envFile := filepath.Join(t.TempDir(), "env")
	bin := script(t, "zhost-plugin-env", `env > `+envFile+`; exec "`+testbin.Zhost(t)+`" plugin serve builtin`)
	if err := m.Add(Spec{Name: "env", Path: bin, Env: map[string]string{"ZHOST_TEST_PLUGIN_VAR": "from-config"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Describe(testCtx(t), "env"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	for k, want := range map[string]string{
		"ZHOST_TEST_PLUGIN_VAR": "from-config",
		sdk.EnvBusyPoll:         "0s",
		"ZHOST_TEST_HOST_ONLY":  "inherited",
	} {
		if got[k] != want {
			t.Errorf("plugin saw %s=%q, want %q", k, got[k], want)
		}
	}
	if got["PLUGIN_PROTOCOL_VERSIONS"] == "" {
		t.Errorf("plugin saw no go-plugin handshake variables: %v", got)
	}
}
