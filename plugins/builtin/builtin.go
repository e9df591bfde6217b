package builtin

import (
	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// Name is the plugin name of the built-ins, as cluster.hcl writes it
// (`plugin = "builtin"`) and as the host names their logs.
const Name = "builtin"

// Plugin returns the built-in plugin: every built-in backend type and mount
// function. version is the zhost version it reports; logger receives the
// backends' logs (in a plugin process, sdk.Logger()).
func Plugin(version string, logger hclog.Logger) *sdk.Plugin {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &sdk.Plugin{
		Name:      Name,
		Version:   version,
		Backends:  Backends(logger),
		Functions: Functions(),
	}
}

// Functions returns the built-in mount functions by name.
func Functions() map[string]sdk.MountFunction {
	return map[string]sdk.MountFunction{
		MountPartitionName: MountPartition{},
	}
}

// IsBuiltinType reports whether typ is a built-in backend type, the ones
// a storage block may run with in_process = true.
func IsBuiltinType(typ string) bool {
	_, ok := Backends(hclog.NewNullLogger())[typ]
	return ok
}

// StorageTypes returns the schema of every built-in backend type's storage
// block, for hcl.Options.StorageTypes.
func StorageTypes() map[string]hcl.Schema {
	out := map[string]hcl.Schema{}
	for n, b := range Backends(hclog.NewNullLogger()) {
		out[n] = b.Schema()
	}
	return out
}

// MountFunctions returns the args schema of every built-in mount function,
// for hcl.Options.MountFunctions.
func MountFunctions() map[string]hcl.Schema {
	out := map[string]hcl.Schema{}
	for n, f := range Functions() {
		out[n] = f.ArgsSchema()
	}
	return out
}
