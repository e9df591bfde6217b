// Package zhostcmd is the zhost command line as a library, layer 10 of
// zhost: cmd/zhost/main.go only calls Main. Each verb lives in its own file
// (`validate`, `run`, `pack`, `plugins`, `bench`, ...) and registers itself
// with RegisterCommand from an init function; the work is done by the
// packages below (hcl, host, host/client), so every verb is a few lines of
// flags, output and exit codes (ExitOK, ExitFailure, ExitUsage, ExitCrash).
//
// Commands run against an Env, so tests run them in-process:
//
//	var out, errOut bytes.Buffer
//	code := zhostcmd.Run(&zhostcmd.Env{Stdout: &out, Stderr: &errOut}, []string{"validate", "cluster.hcl"})
//
// Config problems are printed by one writer for every verb (the text form
// of hcl.Diagnostics with source snippets), warnings included.
package zhostcmd
