package filestorage_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/zhostdb/zhost/plugins/filestorage"
)

// TestRegressionOidsReusedAfterCrash: NewOids raises the counter in memory
// only; it reaches disk with the next index save. A process killed after
// handing out oids (not yet used by a committed transaction) hands the
// same oids out again after restart, which the contract forbids ("never
// reused, also across restarts").
func TestRegressionOidsReusedAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 1)
	closeOK(t, st)
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^TestRegressionOidsHelperProcess$")
	cmd.Env = append(os.Environ(), "FILESTORAGE_OIDS_HELPER="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var first uint64
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "handed out "); ok {
			first, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if first == 0 {
		t.Fatalf("helper said: %s", out)
	}
	st2 := open(t, path, filestorage.Options{})
	oids, err := st2.NewOids(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(oids[0]) <= first+99 {
		t.Fatalf("oid %s handed out again after a crash (the killed process handed out %d..%d)", oids[0], first, first+99)
	}
}

// TestRegressionOidsHelperProcess hands out 100 oids and dies without Close.
func TestRegressionOidsHelperProcess(t *testing.T) {
	path := os.Getenv("FILESTORAGE_OIDS_HELPER")
	if path == "" {
		t.Skip("helper process")
	}
	st, err := filestorage.Open(path, filestorage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oids, err := st.NewOids(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("handed out %d\n", uint64(oids[0]))
	os.Exit(0) // killed: no Close
}
