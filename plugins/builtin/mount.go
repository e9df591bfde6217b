package builtin

import (
	"context"
	"fmt"
	"strings"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// MountPartitionName is the built-in mount function that mounts a folder
// of a named partition: args { partition = "sessiondata", folder =
// "session_data" }.
const MountPartitionName = "mount_partition"

// MountPartition is the mount_partition function. It checks its args and
// answers them back as the target.
type MountPartition struct{}

// Description is shown by `zhost plugins`.
func (MountPartition) Description() string {
	return "mount folder FOLDER of partition PARTITION"
}

// ArgsSchema declares the args of a mount block using mount_partition.
func (MountPartition) ArgsSchema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{
		{Name: "partition", Type: hcl.TypeString, Required: true, Description: "the partition holding the mounted tree"},
		{Name: "folder", Type: hcl.TypeString, Required: true, Description: "the folder inside the partition's root, \"session_data\" or \"a/b\""},
	}}
}

// Resolve validates the args and returns them as the target.
func (MountPartition) Resolve(_ context.Context, req sdk.MountRequest) (sdk.MountTarget, error) {
	if err := sdk.CheckArgs(MountPartition{}.ArgsSchema(), req.Args); err != nil {
		return sdk.MountTarget{}, err
	}
	partition, _ := req.Args["partition"].(string)
	folder, _ := req.Args["folder"].(string)
	if err := CheckName(partition); err != nil {
		return sdk.MountTarget{}, fmt.Errorf("arg \"partition\": %w", err)
	}
	if err := CheckFolder(folder); err != nil {
		return sdk.MountTarget{}, fmt.Errorf("arg \"folder\": %w", err)
	}
	return sdk.MountTarget{Partition: partition, Folder: folder}, nil
}

// CheckArg checks one arg of a built-in mount function as Resolve would,
// so `zhost validate` reports at the arg what would otherwise fail only
// when the mount is resolved (hcl.Options.CheckMountArg). Args of other
// types than their schema says, and unknown functions, are left to the
// schema check.
func CheckArg(function, arg string, value any) error {
	s, ok := value.(string)
	if function != MountPartitionName || !ok {
		return nil
	}
	switch arg {
	case "partition":
		return CheckName(s)
	case "folder":
		return CheckFolder(s)
	}
	return nil
}

// CheckName checks a partition name: letters, digits, '_' and '-', not
// empty. The error wraps storage.ErrInvalid.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("empty partition name: %w", storage.ErrInvalid)
	}
	for _, r := range name {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("partition name %q: only letters, digits, '_' and '-' are allowed: %w", name, storage.ErrInvalid)
		}
	}
	return nil
}

// CheckFolder checks a folder path inside a partition: relative,
// '/'-separated, no empty, "." or ".." segment. The error wraps
// storage.ErrInvalid.
func CheckFolder(folder string) error {
	if folder == "" {
		return fmt.Errorf("empty folder: %w", storage.ErrInvalid)
	}
	if strings.HasPrefix(folder, "/") {
		return fmt.Errorf("folder %q must be relative to the partition's root (no leading '/'): %w", folder, storage.ErrInvalid)
	}
	for _, seg := range strings.Split(folder, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("folder %q: empty, '.' or '..' path segment: %w", folder, storage.ErrInvalid)
		}
	}
	return nil
}

var _ sdk.MountFunction = MountPartition{}
