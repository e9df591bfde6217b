package zhostcmd

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestRegressionMountPartitionArgsChecked: validate (and run's config
// check) took any string as mount_partition's folder and partition, so
// folder = "../x" or "" was "valid" and the mount then failed on every
// app node when it was resolved ("empty, '.' or '..' path segment"), and
// sessions under it with it. Each is now reported at the arg's value.
func TestRegressionMountPartitionArgsChecked(t *testing.T) {
	const base = `server "zeo" { listen = "127.0.0.1:9100" }
storage "main" { type = "memory" }
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
mount "m" {
  function = "mount_partition"
  path     = "/m"
  args     = { partition = "main", folder = %q }
}
`
	for _, c := range []struct {
		folder string
		col    int // of the value, 0: valid
	}{
		{"session_data", 0},
		{"a/b", 0},
		{"../x", 45},
		{"", 45},
		{"/abs", 45},
		{"a//b", 45},
		{"a/./b", 45},
	} {
		p := writeTemp(t, "cluster.hcl", fmt.Sprintf(base, c.folder))
		code, out, errOut := runCmd(t, "validate", "-json", p)
		var rep struct {
			Diagnostics []struct {
				Summary string
				Range   struct{ Start struct{ Line, Column int } }
			}
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("folder %q: %v\n%s%s", c.folder, err, out, errOut)
		}
		if c.col == 0 {
			if code != ExitOK {
				t.Errorf("folder %q: exit %d, want 0: %s", c.folder, code, out)
			}
			continue
		}
		if code != ExitFailure || len(rep.Diagnostics) != 1 {
			t.Errorf("folder %q: exit %d, want 1 with one diagnostic: %s", c.folder, code, out)
			continue
		}
		d := rep.Diagnostics[0]
		if d.Summary != "Invalid mount argument" || d.Range.Start.Line != 8 || d.Range.Start.Column != c.col {
			t.Errorf("folder %q: got %q at 8:%d... %+v, want Invalid mount argument at 8:%d", c.folder, d.Summary, d.Range.Start.Column, d, c.col)
		}
	}
}

// TestRegressionPackDaysChecked: `zhost pack -days -1` (or NaN, or 1e300)
// packed to a time in the future (or to whatever the overflowed duration
// gave) instead of being refused as a usage error.
func TestRegressionPackDaysChecked(t *testing.T) {
	for _, days := range []string{"-1", "NaN", "1e300", "-Inf"} {
		code, _, errOut := runCmd(t, "pack", "-server", "127.0.0.1:1", "-timeout", "2s", "-days", days)
		if code != ExitUsage {
			t.Errorf("pack -days %s: exit %d, want %d (usage): %s", days, code, ExitUsage, errOut)
		}
	}
}
