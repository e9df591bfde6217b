package zhostcmd

import (
	"context"
	"fmt"
	"io"
	"os"

	hcl2 "github.com/hashicorp/hcl/v2"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host"
)

// writeDiagnosticFiles prints diags as text with source snippets taken
// from files (a Parser's Files), the one format every verb uses for
// config problems. It fails only when w fails.
func writeDiagnosticFiles(w io.Writer, files map[string]*hcl2.File, diags hcl2.Diagnostics) error {
	if len(diags) == 0 {
		return nil
	}
	wr := hcl2.NewDiagnosticTextWriter(w, files, 78, false)
	if err := wr.WriteDiagnostics(diags); err != nil {
		return fmt.Errorf("write diagnostics: %w", err)
	}
	return nil
}

// loadConfig loads file for verb the way `zhost validate` checks it (the
// built-in types and functions; external plugins are not started) and
// prints every diagnostic, warnings included, on env.Stderr. It returns
// the config and ExitOK, or nil and the exit code for the problem:
// ExitUsage for a file that does not exist, ExitFailure for an invalid
// one.
func loadConfig(ctx context.Context, env *Env, verb, file string) (*hcl.Config, int) {
	if _, err := os.Stat(file); err != nil {
		fmt.Fprintf(env.Stderr, "zhost %s: %v\n", verb, err)
		return nil, ExitUsage
	}
	p := hcl.NewParser(host.ParseOptions(ctx, nil))
	cfg, diags := p.Load(file)
	if err := writeDiagnosticFiles(env.Stderr, p.Files(), diags); err != nil {
		fmt.Fprintf(env.Stderr, "zhost %s: %v\n", verb, err)
	}
	if diags.HasErrors() || cfg == nil {
		return nil, ExitFailure
	}
	return cfg, ExitOK
}
