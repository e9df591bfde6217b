package builtin

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// Backends returns the built-in backend types by name. This is the one
// place the built-in storages are wired in; each gets a logger named after
// its type.
func Backends(logger hclog.Logger) map[string]sdk.Backend {
	return map[string]sdk.Backend{
		MemoryType: memoryBackend{logger: logger.Named(MemoryType)},
	}
}

// MemoryType is the backend type of the in-memory storage. It is for tests
// and demos: its contents vanish when the process holding it exits.
const MemoryType = "memory"

type memoryBackend struct{ logger hclog.Logger }

func (memoryBackend) Description() string {
	return "in-memory storage with history and undo, for tests: contents vanish when the process exits"
}

func (memoryBackend) Schema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{
		{Name: "read_only", Type: hcl.TypeBool, Default: false, Description: "refuse every write with ErrReadOnly"},
	}}
}

func (b memoryBackend) Open(_ context.Context, name string, cfg hcl.Values) (storage.Storage, error) {
	ro, _ := cfg["read_only"].(bool)
	return memstorage.New(memstorage.Options{Logger: b.logger.With("storage", name), ReadOnly: ro}), nil
}
