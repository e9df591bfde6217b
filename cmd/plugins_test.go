package zhostcmd

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zhostdb/zhost/internal/testbin"
)

// TestPluginsCommand runs the real binary: `zhost plugins` must start the
// built-in plugin by re-executing itself and list what it exports, and
// with a config list its plugin blocks, flagging a checksum mismatch.
func TestPluginsCommand(t *testing.T) {
	zhost := testbin.Zhost(t)
	mount := testbin.Build(t, "ZHOST_CUSTOM_MOUNT", "./examples/custom-mount", "zhost-plugin-custom-mount")

	out, err := exec.Command(zhost, "plugins", "-json").Output()
	if err != nil {
		t.Fatalf("zhost plugins -json: %v", err)
	}
	var infos []pluginInfo
	if err := json.Unmarshal(out, &infos); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(infos) != 1 || infos[0].Name != "builtin" || infos[0].Error != "" || infos[0].ProtocolVersion != 1 ||
		!strings.Contains(strings.Join(infos[0].Backends, ","), "filestorage") ||
		!strings.Contains(strings.Join(infos[0].Backends, ","), "packless") ||
		strings.Join(infos[0].Functions, ",") != "mount_partition" || len(infos[0].SHA256) != 64 {
		t.Fatalf("builtin = %+v", infos)
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "cluster.hcl")
	src := `server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "memory"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }

plugin "good" {
  path = "` + mount + `"
}

plugin "tampered" {
  path   = "` + mount + `"
  sha256 = "` + strings.Repeat("ab", 32) + `"
}
`
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(zhost, "plugins", cfg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	text, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitFailure {
		t.Fatalf("zhost plugins with a tampered plugin: %v, want exit %d\n%s\n%s", err, ExitFailure, text, stderr.String())
	}
	got := string(text)
	for _, want := range []string{
		"good (" + cfg + ":8)", "functions: by_hash, by_prefix", "version:   1.0.0",
		"tampered (" + cfg + ":12)", "the config says " + strings.Repeat("ab", 32), "plugin checksum mismatch",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s\nstderr:\n%s", want, got, stderr.String())
		}
	}
}
