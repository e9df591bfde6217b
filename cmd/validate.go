package zhostcmd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	hcl2 "github.com/hashicorp/hcl/v2"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host"
	"github.com/zhostdb/zhost/host/pluginhost"
)

func init() {
	var jsonOut, offline *bool
	RegisterCommand(&Command{
		Name:  "validate",
		Usage: "[-json] [-offline] FILE",
		Short: "check a cluster.hcl and report every problem in it",
		Long: `Validate parses FILE (native HCL syntax, or JSON syntax when the name ends
in .json), decodes every block with its schema and runs the cross-block
checks, then reports every problem at once with its file, line and column.
Nothing is opened. The built-in storage types and mount functions check
their settings against the schemas they declare; each external plugin
block's plugin is started just long enough to ask for its schemas, so its
settings are checked too (-offline skips that: their settings are then
taken as written).

Exit status: 0 when the file is valid (warnings allowed), 1 when it is not,
2 for a usage error or a file that cannot be read.

With -json the report is one JSON object on standard output:
  {"valid": bool, "error_count": n, "warning_count": n,
   "diagnostics": [{"severity", "summary", "detail",
                    "range": {"filename", "start": {"line", "column", "byte"},
                              "end": {...}} | null,
                    "snippet": {"context", "code", "start_line",
                                "highlight_start_offset",
                                "highlight_end_offset"} | null}]}`,
		Flags: func(fs *flag.FlagSet) {
			jsonOut = fs.Bool("json", false, "print the report as JSON on standard output")
			offline = fs.Bool("offline", false, "do not start external plugins to learn their schemas")
		},
		Run: func(env *Env, fs *flag.FlagSet, args []string) int {
			return runValidate(env, fs, args, *jsonOut, *offline)
		},
	})
}

func runValidate(env *Env, fs *flag.FlagSet, args []string, jsonOut, offline bool) int {
	if len(args) != 1 {
		fmt.Fprintf(env.Stderr, "zhost validate: want exactly one FILE, have %d arguments\n\n", len(args))
		fs.Usage()
		return ExitUsage
	}
	path := args[0]
	src, err := os.ReadFile(path)
	if err != nil {
		diags := hcl2.Diagnostics{{
			Severity: hcl2.DiagError,
			Summary:  "Cannot read config file",
			Detail:   fmt.Sprintf("read %s: %v", path, err),
		}}
		if jsonOut {
			writeJSONReport(env, hcl.NewReport(diags, nil))
		} else {
			fmt.Fprintf(env.Stderr, "zhost validate: read %s: %v\n", path, err)
		}
		return ExitUsage
	}
	var mgr *pluginhost.Manager
	if !offline {
		// The manager starts an external plugin only when a plugin block
		// asks for its schemas, and stops it on Close.
		mgr, err = pluginhost.NewManager(pluginhost.Options{
			Logger: hclog.New(&hclog.LoggerOptions{Name: "zhost", Level: hclog.Warn, Output: env.Stderr}),
		})
		if err != nil {
			fmt.Fprintf(env.Stderr, "zhost validate: start plugin manager: %v\n", err)
			return ExitFailure
		}
		defer func() {
			if err := mgr.Close(); err != nil {
				fmt.Fprintf(env.Stderr, "zhost validate: stop plugins: %v\n", err)
			}
		}()
	}
	p := hcl.NewParser(host.ParseOptions(context.Background(), mgr))
	_, diags := p.Parse(src, path)
	if jsonOut {
		writeJSONReport(env, hcl.NewReport(diags, p.Files()))
	} else {
		if err := writeDiagnosticFiles(env.Stderr, p.Files(), diags); err != nil {
			fmt.Fprintf(env.Stderr, "zhost validate: %v\n", err)
		}
		rep := hcl.NewReport(diags, nil)
		switch {
		case !rep.Valid:
			fmt.Fprintf(env.Stderr, "%s is invalid: %s, %s.\n", path, plural(rep.ErrorCount, "error"), plural(rep.WarningCount, "warning"))
		case rep.WarningCount > 0:
			fmt.Fprintf(env.Stdout, "%s is valid, with %s.\n", path, plural(rep.WarningCount, "warning"))
		default:
			fmt.Fprintf(env.Stdout, "%s is valid.\n", path)
		}
	}
	if diags.HasErrors() {
		return ExitFailure
	}
	return ExitOK
}

func writeJSONReport(env *Env, rep *hcl.Report) {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(env.Stderr, "zhost validate: encode report: %v\n", err)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
