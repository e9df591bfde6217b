// Command zhost-plugin-custom-storage is an example external storage
// backend: its own binary, written only against plugins/sdk and the
// storage contract. It exports the backend type "jsonl", a storage kept in
// one append-only JSON-lines file (see package jsonl):
//
//	plugin "custom-storage" {
//	  path = "bin/zhost-plugin-custom-storage"
//	}
//
//	storage "notes" {
//	  type = "custom-storage"
//	  path = "var/notes.jsonl"
//	}
//
// Build it with `make plugins`. It passes the storage conformance suite
// through the real subprocess boundary (host/pluginhost tests).
package main

import (
	"context"

	"github.com/zhostdb/zhost/examples/custom-storage/jsonl"
	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// Version is the plugin's version, shown by `zhost plugins`.
const Version = "1.0.0"

type backend struct{}

func (backend) Description() string {
	return "append-only JSON-lines file, current revisions only (an example)"
}

func (backend) Schema() hcl.Schema { return jsonl.Schema() }

func (backend) Open(_ context.Context, name string, cfg hcl.Values) (storage.Storage, error) {
	return jsonl.FromConfig(cfg, sdk.Logger().Named(jsonl.TypeName).With("storage", name))
}

func main() {
	sdk.Serve(&sdk.Plugin{
		Name:     "custom-storage",
		Version:  Version,
		Backends: map[string]sdk.Backend{jsonl.TypeName: backend{}},
	})
}

var _ sdk.Backend = backend{}
