// Command schemaplugin is a test plugin whose storage type and mount
// function declare settings of every kind that needs decoding (a path
// other than "path", a size, a duration, defaults). Its storage writes the
// settings it received to DIR/received.json, DIR being the directory of
// its path, and keeps its data in memory; its mount function "echo"
// answers partition "main", folder "echo".
package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

type backend struct{}

func (backend) Schema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{
		{Name: "path", Type: hcl.TypePath, Required: true},
		{Name: "index", Type: hcl.TypePath, Default: "index"},
		{Name: "cache", Type: hcl.TypeSize, Default: "1MiB"},
		{Name: "ttl", Type: hcl.TypeDuration},
	}}
}

func (backend) Open(_ context.Context, _ string, cfg hcl.Values) (storage.Storage, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfg.String("path")), "received.json"), b, 0o644); err != nil {
		return nil, err
	}
	return memstorage.New(memstorage.Options{}), nil
}

type echo struct{}

func (echo) ArgsSchema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{{Name: "ttl", Type: hcl.TypeDuration, Required: true}}}
}

func (echo) Resolve(context.Context, sdk.MountRequest) (sdk.MountTarget, error) {
	return sdk.MountTarget{Partition: "main", Folder: "echo"}, nil
}

func main() {
	sdk.Serve(&sdk.Plugin{
		Name:      "schema",
		Version:   "1.0.0",
		Backends:  map[string]sdk.Backend{"schema": backend{}},
		Functions: map[string]sdk.MountFunction{"echo": echo{}},
	})
}
