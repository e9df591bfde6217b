package host

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestRelayLogLevelsAndNames(t *testing.T) {
	var out syncBuf
	l := hclog.New(&hclog.LoggerOptions{Name: "app1", Output: &out, Level: hclog.Trace})
	in := strings.Join([]string{
		`{"@level":"warn","@message":"slow commit","@module":"app1.client","ms":12,"tid":1795558712051522600}`,
		``,
		`plain text from a panic`,
		`{"@level":"error","@message":"boom","@module":"app1"}`,
	}, "\n")
	RelayLog(strings.NewReader(in), l)
	got := out.String()
	for _, want := range []string{
		"[WARN]  app1.client: slow commit: ms=12 tid=1795558712051522600",
		"[INFO]  app1: plain text from a panic",
		"[ERROR] app1: boom",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("relayed log lacks %q:\n%s", want, got)
		}
	}
}

// TestRelayLogLongLine: a line over the 1 MiB limit is cut and the lines
// after it are still relayed, and the whole input is read (regression:
// the relay stopped at such a line, so the child's next writes filled the
// pipe and blocked the child for good).
func TestRelayLogLongLine(t *testing.T) {
	var out syncBuf
	l := hclog.New(&hclog.LoggerOptions{Name: "zeo", Output: &out, Level: hclog.Info})
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		RelayLog(pr, l)
	}()
	t.Cleanup(func() { _ = pr.Close(); <-done })
	huge := strings.Repeat("x", 3*maxLogLine)
	write := func(s string) {
		t.Helper()
		if _, err := io.WriteString(pw, s); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"@level":"info","@message":"` + huge + "\"}\n")
	for i := 0; i < 3; i++ {
		write(`{"@level":"info","@message":"after the long line"}` + "\n")
	}
	_ = pw.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RelayLog did not return at the end of its input")
	}
	got := out.String()
	if strings.Count(got, "zeo: after the long line") != 3 {
		t.Fatalf("lines after the long one were not relayed; log tail:\n%s", got[max(0, len(got)-500):])
	}
	if !strings.Contains(got, "log line too long; cut") || strings.Count(got, "x") > maxLogLine+100 {
		t.Fatalf("long line not cut at %d bytes (log holds %d bytes)", maxLogLine, len(got))
	}
}
