package zhostcmd

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	hcl2 "github.com/hashicorp/hcl/v2"

	"github.com/zhostdb/zhost/hcl"
)

func init() {
	var jsonOut *bool
	RegisterCommand(&Command{
		Name:  "validate",
		Usage: "[-json] FILE",
		Short: "check a cluster.hcl and report every problem in it",
		Long: `Validate parses FILE (native HCL syntax, or JSON syntax when the name ends
in .json), decodes every block with its schema and runs the cross-block
checks, then reports every problem at once with its file, line and column.
Nothing is started or opened.

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
		},
		Run: func(env *Env, fs *flag.FlagSet, args []string) int {
			return runValidate(env, fs, args, *jsonOut)
		},
	})
}

func runValidate(env *Env, fs *flag.FlagSet, args []string, jsonOut bool) int {
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
	p := hcl.NewParser(ValidateOptions())
	_, diags := p.Parse(src, path)
	if jsonOut {
		writeJSONReport(env, hcl.NewReport(diags, p.Files()))
	} else {
		wr := hcl2.NewDiagnosticTextWriter(env.Stderr, p.Files(), 78, false)
		if err := wr.WriteDiagnostics(diags); err != nil {
			fmt.Fprintf(env.Stderr, "zhost validate: write diagnostics: %v\n", err)
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

// ValidateOptions are the parser options `zhost validate` (and, until the
// plugins declare their own, every verb that reads cluster.hcl) uses.
//
// TEMPORARY: the schemas below stand in for the ones the built-in backends
// and mount functions will declare themselves (plugins/...); replace this
// registry with theirs when they land. External plugins are not asked for
// their schemas yet (PluginSchemas is nil), so their settings are decoded
// as written.
func ValidateOptions() hcl.Options {
	return hcl.Options{
		StorageTypes: map[string]hcl.Schema{
			"filestorage": {Attributes: []hcl.Attribute{
				{Name: "path", Type: hcl.TypePath, Required: true, Description: "The Data.fs file."},
				{Name: "sync", Type: hcl.TypeString, Default: "always", Enum: []string{"always", "group", "none"},
					Description: "When commits reach the disk: fsync per commit, grouped commits, or left to the OS."},
				{Name: "keep_old", Type: hcl.TypeBool, Default: false, Description: "Keep the previous file as Data.fs.old when packing."},
				{Name: "read_only", Type: hcl.TypeBool, Default: false, Description: "Open read-only."},
			}},
			"packless": {Attributes: []hcl.Attribute{
				{Name: "path", Type: hcl.TypePath, Required: true, Description: "The LevelDB directory."},
				{Name: "sync", Type: hcl.TypeBool, Default: true, Description: "fsync every commit."},
				{Name: "cache_size", Type: hcl.TypeSize, Default: "8MiB", Min: "0", Max: "64GiB", Description: "LevelDB block cache."},
				{Name: "bloom_bits", Type: hcl.TypeNumber, Default: float64(10), Min: "0", Max: "64", Description: "Bloom filter bits per key; 0 disables the filter."},
				{Name: "write_buffer", Type: hcl.TypeSize, Default: "4MiB", Min: "64KiB", Max: "1GiB", Description: "LevelDB memtable size."},
			}},
		},
		MountFunctions: map[string]hcl.Schema{
			"mount_partition": {Attributes: []hcl.Attribute{
				{Name: "partition", Type: hcl.TypeString, Required: true, Description: "The partition to mount."},
				{Name: "folder", Type: hcl.TypeString, Default: "", Description: "The folder inside the partition to mount; empty for its root."},
			}},
		},
	}
}
