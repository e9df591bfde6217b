// Package testbin builds the binaries that tests run as real subprocesses:
// the zhost binary itself (which serves the built-in plugins by re-executing
// itself) and the example plugins. `make test` builds them once into bin/
// and exports their paths in the environment; a plain `go test` builds them
// on first use, once per test process.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
	dir   string
)

// Zhost returns the path of a zhost binary: $ZHOST_BIN if set, else one
// built from ./cmd/zhost of this module.
func Zhost(tb testing.TB) string {
	return Build(tb, "ZHOST_BIN", "./cmd/zhost", "zhost")
}

// Build returns the path of the binary built from pkg (a path relative to
// the module root, "./examples/custom-mount"), or the path in the
// environment variable env if that is set. The binary is built at most
// once per test process.
func Build(tb testing.TB, env, pkg, name string) string {
	tb.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		tb.Logf("testbin: %s=%s does not exist; building %s", env, p, pkg)
	}
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "zhost-testbin-")
		if err != nil {
			tb.Fatalf("testbin: %v", err)
		}
		dir = d
	}
	root, err := ModuleRoot()
	if err != nil {
		tb.Fatalf("testbin: %v", err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("testbin: go build %s: %v\n%s", pkg, err, msg)
	}
	built[pkg] = out
	return out
}

// ModuleRoot returns the directory holding this module's go.mod.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate testbin source")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}
