package zhostcmd

import (
	"strings"
	"testing"
)

func TestHelpAndUsageErrors(t *testing.T) {
	code, out, errOut := runCmd(t, "--help")
	if code != ExitOK || !strings.Contains(out, "validate") || !strings.Contains(out, "run") || errOut != "" {
		t.Fatalf("zhost --help: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, verb := range []string{"validate", "run", "pack", "plugins", "bench", "version"} {
		code, out, errOut := runCmd(t, verb, "--help")
		if code != ExitOK || !strings.HasPrefix(out, "Usage: zhost "+verb) || errOut != "" {
			t.Errorf("zhost %s --help: code %d\nstdout:\n%s\nstderr:\n%s", verb, code, out, errOut)
		}
		if strings.Count(out, "Usage:") != 1 {
			t.Errorf("zhost %s --help prints its usage %d times", verb, strings.Count(out, "Usage:"))
		}
	}
	if code, _, errOut := runCmd(t, "frobnicate"); code != ExitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown verb: code %d, stderr %q", code, errOut)
	}
	if code, out, errOut := runCmd(t, "validate", "--no-such-flag"); code != ExitUsage || out != "" || !strings.Contains(errOut, "Usage: zhost validate") {
		t.Fatalf("bad flag: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, _ := runCmd(t); code != ExitUsage {
		t.Fatalf("no arguments: code %d, want %d", code, ExitUsage)
	}
	if code, out, _ := runCmd(t, "version"); code != ExitOK || !strings.HasPrefix(out, "zhost ") {
		t.Fatalf("version: code %d, stdout %q", code, out)
	}
	if code, _, errOut := runCmd(t, "run", "/no/such/cluster.hcl"); code != ExitUsage || !strings.Contains(errOut, "no such file") {
		t.Fatalf("run of a missing file: code %d, stderr %q", code, errOut)
	}
}
