package builtin

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/plugins/filestorage"
	"github.com/zhostdb/zhost/plugins/packless"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// Backend type names of the built-in storages.
const (
	FileStorageType = "filestorage"
	PacklessType    = "packless"
	// MemoryType is the in-memory storage. It is for tests and demos: its
	// contents vanish when the process holding it exits.
	MemoryType = "memory"
)

// Backends returns the built-in backend types by name. This is the one
// place the built-in storages are wired in; each gets a logger named after
// its type.
func Backends(logger hclog.Logger) map[string]sdk.Backend {
	return map[string]sdk.Backend{
		FileStorageType: configBackend[*filestorage.Storage]{
			description: "append-only log file (Data.fs): history, undo, pack",
			schema:      filestorage.Schema,
			open:        filestorage.FromConfig,
			logger:      logger.Named(FileStorageType),
		},
		PacklessType: configBackend[*packless.Storage]{
			description: "LevelDB: current revisions only, overwritten in place, never needs packing",
			schema:      packless.Schema,
			open:        packless.FromConfig,
			logger:      logger.Named(PacklessType),
		},
		MemoryType: memoryBackend{logger: logger.Named(MemoryType)},
	}
}

// configBackend adapts a backend package's Schema and FromConfig pair.
type configBackend[S storage.Storage] struct {
	description string
	schema      func() hcl.Schema
	open        func(hcl.Values, hclog.Logger) (S, error)
	logger      hclog.Logger
}

func (b configBackend[S]) Description() string { return b.description }
func (b configBackend[S]) Schema() hcl.Schema  { return b.schema() }

func (b configBackend[S]) Open(_ context.Context, name string, cfg hcl.Values) (storage.Storage, error) {
	st, err := b.open(cfg, b.logger.With("storage", name))
	if err != nil {
		return nil, err
	}
	return st, nil
}

type memoryBackend struct{ logger hclog.Logger }

func (memoryBackend) Description() string {
	return "in memory, with history and undo, for tests: contents vanish when the process exits"
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

var (
	_ sdk.Backend = configBackend[*filestorage.Storage]{}
	_ sdk.Backend = configBackend[*packless.Storage]{}
	_ sdk.Backend = memoryBackend{}
)
