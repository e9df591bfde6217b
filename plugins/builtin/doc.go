// Package builtin is the registry of the backends and mount functions
// built into zhost, layer 3 of zhost. The zhost binary serves them as a
// plugin named "builtin" by re-executing itself (`zhost plugin serve
// builtin`), so one binary is the whole install; host/pluginhost opens
// them inside the host instead for a storage block with in_process = true.
//
// Backend types: filestorage (plugins/filestorage), packless
// (plugins/packless) and memory (host/storage/memstorage, for tests).
// Mount functions: mount_partition, args { partition, folder }.
//
// StorageTypes and MountFunctions give their schemas to package hcl, so
// `zhost validate` checks storage blocks and mount args:
//
//	cfg, diags := hcl.Load(path, hcl.Options{
//		StorageTypes:   builtin.StorageTypes(),
//		MountFunctions: builtin.MountFunctions(),
//	})
//
// Backends in backends.go is the one place a built-in storage is wired in.
package builtin
