package zhostcmd

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestRunNodeAndMachineExclusive(t *testing.T) {
	code, _, errOut := runCmd(t, "run", "--node", "app1", "--machine", "m1", "../examples/cluster.hcl")
	if code != ExitUsage || !strings.Contains(errOut, "not both") {
		t.Fatalf("run --node --machine: exit %d, stderr %q", code, errOut)
	}
}

// TestStopTimeoutCoversDrain: the supervisor waits longer than a
// balancer's drain_timeout before killing it (regression: it killed
// after a fixed 20s, inside the default 30s drain).
func TestStopTimeoutCoversDrain(t *testing.T) {
	src, err := os.ReadFile("../examples/cluster.hcl")
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Stdin: strings.NewReader("")}
	cfg, code := loadConfig(context.Background(), env, "run", writeTemp(t, "cluster.hcl", string(src)))
	if cfg == nil {
		t.Fatalf("load: %d", code)
	}
	drain := cfg.Balancers[0].DrainTimeout
	if drain <= 0 {
		t.Fatalf("example balancer has drain_timeout %v", drain)
	}
	if got := stopTimeout(cfg); got <= drain || got <= 20*time.Second {
		t.Fatalf("stopTimeout = %v, want more than drain_timeout %v and the nodes' 20s", got, drain)
	}
	cfg.Balancers[0].DrainTimeout = 5 * time.Minute
	if got := stopTimeout(cfg); got <= 5*time.Minute {
		t.Fatalf("stopTimeout = %v with a 5m drain", got)
	}
}
