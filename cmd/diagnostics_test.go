package zhostcmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadConfigPrintsWarnings: run and pack load configs through
// loadConfig, which shows warnings too (regression: `zhost run` printed
// diagnostics only when there was an error, so a warning validate shows
// was never seen by whoever starts the cluster).
func TestLoadConfigPrintsWarnings(t *testing.T) {
	var out, errOut bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")}
	src, err := os.ReadFile("../examples/cluster.hcl")
	if err != nil {
		t.Fatal(err)
	}
	// A storage no partition uses is valid, with a warning.
	file := writeTemp(t, "cluster.hcl", string(src)+"\nstorage \"spare\" {\n  type = \"packless\"\n  path = \"var/spare\"\n}\n")
	cfg, code := loadConfig(context.Background(), env, "run", file)
	if cfg == nil || code != ExitOK {
		t.Fatalf("loadConfig = %v, %d; stderr:\n%s", cfg, code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "Warning:") || !strings.Contains(errOut.String(), `storage "spare"`) {
		t.Fatalf("warnings not shown with their place; stderr:\n%s", errOut.String())
	}
}

func TestLoadConfigErrors(t *testing.T) {
	var errOut bytes.Buffer
	env := &Env{Stdout: &bytes.Buffer{}, Stderr: &errOut, Stdin: strings.NewReader("")}
	missing := filepath.Join(t.TempDir(), "nope.hcl")
	if cfg, code := loadConfig(context.Background(), env, "pack", missing); cfg != nil || code != ExitUsage {
		t.Fatalf("missing file: %v, %d", cfg, code)
	}
	if !strings.Contains(errOut.String(), "zhost pack:") || !strings.Contains(errOut.String(), "nope.hcl") {
		t.Fatalf("missing file message: %q", errOut.String())
	}
	errOut.Reset()
	bad := writeTemp(t, "bad.hcl", "server \"zeo\" {\n  listen = 42\n  bogus = true\n}\n")
	if cfg, code := loadConfig(context.Background(), env, "run", bad); cfg != nil || code != ExitFailure {
		t.Fatalf("invalid file: %v, %d", cfg, code)
	}
	// The snippet comes from the parsed file: the bad line is quoted.
	if !strings.Contains(errOut.String(), "Error:") || !strings.Contains(errOut.String(), "bogus = true") {
		t.Fatalf("error without its snippet; stderr:\n%s", errOut.String())
	}
}
