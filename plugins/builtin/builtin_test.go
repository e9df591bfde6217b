package builtin

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

func TestRegistry(t *testing.T) {
	types := StorageTypes()
	for _, typ := range []string{FileStorageType, PacklessType, MemoryType} {
		s, ok := types[typ]
		if !ok {
			t.Fatalf("built-in type %q missing", typ)
		}
		if typ != MemoryType && (s.Attribute("path") == nil || !s.Attribute("path").Required || s.Attribute("path").Type != hcl.TypePath) {
			t.Fatalf("%s: path attribute = %+v", typ, s.Attribute("path"))
		}
		if !IsBuiltinType(typ) {
			t.Fatalf("IsBuiltinType(%q) = false", typ)
		}
	}
	if IsBuiltinType("custom-storage") {
		t.Fatal("an external type counted as built in")
	}
	d := Plugin("v1", nil).Describe()
	if d.Name != Name || d.Version != "v1" || len(d.Backends) != 3 || len(d.Functions) != 1 {
		t.Fatalf("description = %+v", d)
	}
	if f := MountFunctions()[MountPartitionName]; f.Attribute("partition") == nil || f.Attribute("folder") == nil {
		t.Fatalf("mount_partition args = %+v", f)
	}
}

func TestMountPartition(t *testing.T) {
	ctx := context.Background()
	resolve := func(args map[string]any) (sdk.MountTarget, error) {
		return MountPartition{}.Resolve(ctx, sdk.MountRequest{Function: MountPartitionName, Path: "/session_data", Args: args})
	}
	got, err := resolve(map[string]any{"partition": "sessiondata", "folder": "session_data/x"})
	if err != nil || got != (sdk.MountTarget{Partition: "sessiondata", Folder: "session_data/x"}) {
		t.Fatalf("resolve = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"partition": "sessiondata"}, `missing required arg "folder"`},
		{map[string]any{"partition": "", "folder": "f"}, "empty partition name"},
		{map[string]any{"partition": "a/b", "folder": "f"}, "only letters"},
		{map[string]any{"partition": "p", "folder": "/abs"}, "relative"},
		{map[string]any{"partition": "p", "folder": "a//b"}, "empty"},
		{map[string]any{"partition": "p", "folder": "a/../b"}, "'..'"},
		{map[string]any{"partition": "p", "folder": "f", "extra": true}, `unknown arg "extra"`},
		{map[string]any{"partition": 7.0, "folder": "f"}, "want a string"},
	} {
		_, err := resolve(tc.args)
		if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %v: %v; want ErrInvalid mentioning %q", tc.args, err, tc.want)
		}
	}
}
