package host

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// TestRegressionPluginSettingsDecodedAtRun: `zhost run` loads the config
// without starting plugins, so an external plugin's settings were handed
// to it as written: a relative path other than `path` resolved against
// the plugin's working directory instead of the config file's, defaults
// were missing, a size stayed "2MiB" and a duration "7d" (which the SDK
// then refused in mount args: validate said valid, the mount failed).
// The plugin must receive what `zhost validate` decodes.
func TestRegressionPluginSettingsDecodedAtRun(t *testing.T) {
	cfg, opts, dir := schemaPluginCluster(t, `
  cache = "2MiB"
  ttl   = "7d"`, `{ ttl = "7d" }`)

	// The server opens the storage through the plugin.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	sopts := opts
	sopts.Ready = func(net.Addr) { close(ready) }
	go func() { done <- RunNode(ctx, cfg, "zeo", sopts) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("server: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server not ready in 30s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop")
	}
	b, err := os.ReadFile(filepath.Join(dir, "data", "received.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"index": filepath.Join(dir, "index"), // the default, resolved against the config's directory
		"cache": float64(2 << 20),
		"ttl":   (7 * 24 * time.Hour).String(),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("storage setting %s: the plugin got %#v, want %#v (all: %s)", k, got[k], v, b)
		}
	}

	// An app node resolves the mount with the args validate accepted.
	mgr, err := newPluginManager(cfg, opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closePlugins(mgr, opts.Logger)
	m := cfg.Mounts[0]
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if _, err := mgr.Resolve(rctx, m.Plugin, sdk.MountRequest{Function: m.Function, Path: m.Path, Args: m.Args}); err != nil {
		t.Errorf("mount with args validate accepts: %v", err)
	}
}

// TestRegressionMisspeltPluginSettingsRefusedAtRun: `zhost run` decodes an
// external plugin's settings with its schema when it opens the storage or
// resolves the mount, but a name the schema does not declare was kept and
// passed on, so a misspelt setting (`cahce`) was silently ignored at run
// where `zhost validate` reported it. It must fail, naming the setting
// and the likely intended one; the names the host adds (path, read_only)
// are still accepted.
func TestRegressionMisspeltPluginSettingsRefusedAtRun(t *testing.T) {
	cfg, opts, _ := schemaPluginCluster(t, `
  read_only = false
  cahce     = "2MiB"`, `{ tll = "7d" }`)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := RunNode(ctx, cfg, "zeo", opts)
	if err == nil {
		t.Fatal("the server ran with a misspelt storage setting")
	}
	for _, want := range []string{`cahce`, `Did you mean "cache"?`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("server error %q does not say %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "read_only") || strings.Contains(err.Error(), "path:") {
		t.Errorf("server error %q refuses a setting the host adds", err)
	}

	mgr, err := newPluginManager(cfg, opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closePlugins(mgr, opts.Logger)
	m := cfg.Mounts[0]
	_, err = mgr.Resolve(ctx, m.Plugin, sdk.MountRequest{Function: m.Function, Path: m.Path, Args: m.Args})
	if err == nil {
		t.Fatal("the mount resolved with a misspelt arg")
	}
	for _, want := range []string{`tll`, `Did you mean "ttl"?`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("mount error %q does not say %s", err, want)
		}
	}
}

// schemaPluginCluster loads a cluster whose storage "main" (settings added
// to its block) and mount "echo" (with args) come from the schemaplugin
// test plugin, in a new directory with a data folder; it returns the
// config, node options and the directory.
func schemaPluginCluster(t *testing.T, settings, args string) (*hcl.Config, NodeOptions, string) {
	t.Helper()
	bin := testbin.Build(t, "", "./host/testdata/schemaplugin", "zhost-plugin-schema")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := loadTestConfig(t, dir, fmt.Sprintf(`
server "zeo" { listen = "127.0.0.1:%d" }
plugin "schema" { path = %q }
storage "main" {
  type = "schema"
  path = "data/main"%s
}
partition "main" { storage = storage.main }
mount "echo" {
  plugin   = plugin.schema
  function = "echo"
  path     = "/echo"
  args     = %s
}
client "app1" { listen = "127.0.0.1:%d" }
`, testbin.FreePort(t), bin, settings, args, testbin.FreePort(t)))
	opts := NodeOptions{Exe: testbin.Zhost(t), ShutdownTimeout: 5 * time.Second, Logger: hclog.NewNullLogger()}
	return cfg, opts, dir
}
