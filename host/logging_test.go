package host

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewLoggerFileIsJSON: a node's log_file holds hclog JSON lines named
// after the node, as docs/config.md says (regression: it was plain text),
// while stderr keeps the human format.
func TestNewLoggerFileIsJSON(t *testing.T) {
	t.Setenv(EnvLogJSON, "")
	file := filepath.Join(t.TempDir(), "var", "events.log")
	var stderr bytes.Buffer
	log, closeLog, err := NewLogger("zeo", file, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("storage server listening", "addr", "127.0.0.1:9100")
	log.Named("client").Warn("slow commit", "ms", 12)
	if err := closeLog(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log file line is not JSON: %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("log file has %d lines, want 2:\n%s", len(lines), b)
	}
	if lines[0]["@module"] != "zeo" || lines[0]["@message"] != "storage server listening" || lines[0]["addr"] != "127.0.0.1:9100" {
		t.Errorf("first line %v", lines[0])
	}
	if lines[1]["@module"] != "zeo.client" || lines[1]["@level"] != "warn" {
		t.Errorf("second line %v", lines[1])
	}
	if !strings.Contains(stderr.String(), "[INFO]  zeo: storage server listening") {
		t.Errorf("stderr lost the human format: %q", stderr.String())
	}
}
