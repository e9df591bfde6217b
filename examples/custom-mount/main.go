// Command zhost-plugin-custom-mount is an example external mount plugin:
// its own binary, written only against plugins/sdk. It exports two mount
// functions that choose the partition holding a mounted tree by a rule in
// the mount block's args:
//
//	mount "carts" {
//	  plugin   = plugin.custom-mount
//	  function = "by_hash"
//	  path     = "/carts"
//	  args     = { key = "carts", partitions = ["shard0", "shard1"], folder = "carts" }
//	}
//
//	mount "archive" {
//	  plugin   = plugin.custom-mount
//	  function = "by_prefix"
//	  path     = "/archive/2026"
//	  args     = { rules = { "/archive" = "archive" }, default = "main", folder = "archive" }
//	}
//
// Build it with `make plugins` (bin/zhost-plugin-custom-mount) and declare
// it with a plugin block, or put it in the plugin_dir. See docs/plugins.md.
package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// Version is the plugin's version, shown by `zhost plugins`.
const Version = "1.0.0"

func main() {
	sdk.Serve(&sdk.Plugin{
		Name:    "custom-mount",
		Version: Version,
		Functions: map[string]sdk.MountFunction{
			"by_hash":   byHash{},
			"by_prefix": byPrefix{},
		},
	})
}

// byHash spreads mounts over partitions by the FNV-1a hash of a key, so
// the same key always lands on the same partition.
type byHash struct{}

func (byHash) Description() string {
	return "partition = partitions[fnv1a(key) mod len(partitions)]"
}

func (byHash) ArgsSchema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{
		{Name: "key", Type: hcl.TypeString, Required: true, Description: "what to hash; the mount path if empty"},
		{Name: "partitions", Type: hcl.TypeStringList, Required: true, Description: "the candidate partitions"},
		{Name: "folder", Type: hcl.TypeString, Required: true, Description: "the folder inside the chosen partition"},
	}}
}

func (byHash) Resolve(ctx context.Context, req sdk.MountRequest) (sdk.MountTarget, error) {
	parts := strs(req.Args["partitions"])
	if len(parts) == 0 {
		return sdk.MountTarget{}, fmt.Errorf("arg \"partitions\" is empty; list at least one partition: %w", storage.ErrInvalid)
	}
	key, _ := req.Args["key"].(string)
	if key == "" {
		key = req.Path
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	p := parts[h.Sum64()%uint64(len(parts))]
	folder, _ := req.Args["folder"].(string)
	sdk.Logger().Info("mount resolved", "function", req.Function, "path", req.Path, "key", key, "partition", p)
	return sdk.MountTarget{Partition: p, Folder: folder}, nil
}

// byPrefix picks the partition of the longest rule prefix of the mount
// path.
type byPrefix struct{}

func (byPrefix) Description() string {
	return "partition = rules[longest prefix of the mount path], else default"
}

func (byPrefix) ArgsSchema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{
		{Name: "rules", Type: hcl.TypeStringMap, Required: true, Description: "path prefix -> partition"},
		{Name: "default", Type: hcl.TypeString, Description: "partition when no prefix matches; without it that is an error"},
		{Name: "folder", Type: hcl.TypeString, Required: true, Description: "the folder inside the chosen partition"},
	}}
}

func (byPrefix) Resolve(ctx context.Context, req sdk.MountRequest) (sdk.MountTarget, error) {
	rules, _ := req.Args["rules"].(map[string]any)
	prefixes := make([]string, 0, len(rules))
	for p := range rules {
		prefixes = append(prefixes, p)
	}
	// Longest first, so "/archive/old" wins over "/archive".
	sort.Slice(prefixes, func(i, j int) bool { return len(prefixes[i]) > len(prefixes[j]) })
	folder, _ := req.Args["folder"].(string)
	for _, p := range prefixes {
		if req.Path == p || strings.HasPrefix(req.Path, strings.TrimSuffix(p, "/")+"/") {
			part, _ := rules[p].(string)
			return sdk.MountTarget{Partition: part, Folder: folder}, nil
		}
	}
	if d, _ := req.Args["default"].(string); d != "" {
		return sdk.MountTarget{Partition: d, Folder: folder}, nil
	}
	return sdk.MountTarget{}, fmt.Errorf("no rule matches mount path %q (rules: %s) and no default is set: %w",
		req.Path, strings.Join(prefixes, ", "), storage.ErrInvalid)
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

var (
	_ sdk.MountFunction = byHash{}
	_ sdk.MountFunction = byPrefix{}
)
