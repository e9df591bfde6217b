package pluginhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	hcl2 "github.com/hashicorp/hcl/v2"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/builtin"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// TestExampleConfig loads examples/custom-mount/cluster.hcl with the
// plugin's declared schemas (as `zhost validate` does), then resolves every
// mount through the plugins and checks each lands on a partition of the
// config.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	root, err := testbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "examples", "custom-mount", "cluster.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	// The example points at bin/; use the binary this test run built.
	text := strings.Replace(string(src), `"../../bin/zhost-plugin-custom-mount"`, `"`+customMount(t)+`"`, 1)
	m, _ := newManager(t, Options{})
	ctx := testCtx(t)
	opts := hcl.Options{
		StorageTypes:   builtin.StorageTypes(),
		MountFunctions: builtin.MountFunctions(),
		PluginSchemas:  m.PluginSchemas(ctx),
		BaseDir:        t.TempDir(),
	}
	cfg, diags := hcl.Parse([]byte(text), "cluster.hcl", opts)
	if diags.HasErrors() {
		t.Fatalf("example config: %s", diags.Error())
	}
	if len(cfg.Mounts) != 2 {
		t.Fatalf("%d mounts", len(cfg.Mounts))
	}
	for _, mt := range cfg.Mounts {
		target, err := m.Resolve(ctx, mt.Plugin, sdk.MountRequest{Function: mt.Function, Path: mt.Path, Args: mt.Args})
		if err != nil {
			t.Fatalf("mount %s: %v", mt.Name, err)
		}
		if cfg.Partition(target.Partition) == nil {
			t.Fatalf("mount %s resolved to unknown partition %q", mt.Name, target.Partition)
		}
		t.Logf("mount %s (%s) -> partition %s folder %s", mt.Name, mt.Path, target.Partition, target.Folder)
	}

	// A mistake in the args is reported at its line, from the schema the
	// plugin declared.
	bad := strings.Replace(text, `partitions = ["shard0", "shard1"]`, `partitions = "shard0"`, 1)
	_, diags = hcl.Parse([]byte(bad), "cluster.hcl", opts)
	if !diags.HasErrors() {
		t.Fatal("a string for a list(string) arg was accepted")
	}
	var at []hcl2.Range
	for _, d := range diags {
		if d.Subject != nil {
			at = append(at, *d.Subject)
		}
	}
	if len(at) == 0 || at[0].Start.Line != 45 {
		t.Fatalf("diagnostics %s at %v, want line 45", diags.Error(), at)
	}
}
