package pluginhost

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/internal/testbin"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond every 10ms for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newManager returns a manager whose log goes to the returned buffer (and
// to the test log on failure), cleaned up with the test.
func newManager(t testing.TB, opts Options) (*Manager, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Debug, Output: logs})
	}
	if opts.ZhostPath == "" {
		opts.ZhostPath = testbin.Zhost(t)
	}
	m, err := NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close manager: %v", err)
		}
		if t.Failed() {
			t.Logf("host log:\n%s", logs.String())
		}
	})
	return m, logs
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// pidOf returns the pid of a running plugin.
func pidOf(t testing.TB, m *Manager, name string) int {
	t.Helper()
	p, err := m.Plugin(name)
	if err != nil {
		t.Fatal(err)
	}
	st := p.Status()
	if st.State != "running" || st.Pid == 0 {
		t.Fatalf("plugin %s is %s (pid %d)", name, st.State, st.Pid)
	}
	return st.Pid
}

// script writes an executable shell script into a temp dir.
func script(t testing.TB, name, body string) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func fmtSscan(s string, v ...any) (int, error) { return fmt.Sscan(s, v...) }
