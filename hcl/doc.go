// Package hcl is the cluster.hcl language, layer 1 of zhost: the schema of
// every block and attribute, decoding with defaults, and the cross-block
// checks. Its output is a typed, validated *Config, or hcl2.Diagnostics
// with source ranges. It reads the config file and nothing else: it starts
// nothing, opens no storage and imports no other zhost package.
//
// What it cannot know by itself, the layers above pass in Options: the
// built-in storage types and mount functions with their Schemas, and a hook
// that asks an external plugin for its declared schemas. Each storage and
// plugin block body is decoded with its Schema, so a mistake in a backend's
// settings is reported at its line like any other.
//
// Typical use, printing diagnostics with source snippets:
//
//	p := hcl.NewParser(hcl.Options{StorageTypes: builtinSchemas})
//	cfg, diags := p.Load("cluster.hcl")
//	if len(diags) > 0 {
//		wr := hcl2.NewDiagnosticTextWriter(os.Stderr, p.Files(), 78, false)
//		wr.WriteDiagnostics(diags)
//	}
//	if diags.HasErrors() {
//		return ExitFailure
//	}
//	for _, n := range cfg.Nodes() {
//		fmt.Println(n.Kind, n.Name, n.Listen)
//	}
//
// A backend reads its settings from Storage.Config with the Values getters
// (Size, Duration, String, Bool, ...). Later layers that fail at run time
// because of a setting point at it with Block.RangeOf("path").
//
// The language itself (every block and attribute, its type, default and
// bounds) is declared once, in spec.go; docs/config.md's reference section
// is generated from it (ReferenceMarkdown) and a test keeps the two equal.
// Native syntax and JSON syntax (a file name ending in ".json") decode to
// the same Config. NewReport gives the stable JSON shape of
// `zhost validate -json`.
//
// Parse and Load never panic on any input; FuzzValidate checks that.
package hcl
