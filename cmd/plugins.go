package zhostcmd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/plugins/builtin"
)

func init() {
	var jsonOut *bool
	var timeout *time.Duration
	RegisterCommand(&Command{
		Name:  "plugins",
		Usage: "[-json] [FILE]",
		Short: "list the built-in and configured plugins",
		Long: `Plugins starts every plugin once, asks it what it exports and stops it
again, then lists, for the built-in plugin and (with FILE, a cluster.hcl)
each plugin block: its version, kinds (backend, mount), backend types,
mount functions, binary, and the binary's sha256 (compared with the
block's sha256 when it has one).

A plugin that cannot start (missing binary, checksum mismatch, no
handshake) is listed with the error, and the exit status is 1.

With -json the list is one JSON array on standard output, one object per
plugin: {"name", "source", "path", "sha256", "sha256_configured",
"version", "protocol_version", "kinds", "backends", "functions", "error"}.`,
		Flags: func(fs *flag.FlagSet) {
			jsonOut = fs.Bool("json", false, "print the list as JSON on standard output")
			timeout = fs.Duration("timeout", 20*time.Second, "how long each plugin may take to start")
		},
		Run: func(env *Env, fs *flag.FlagSet, args []string) int {
			return runPlugins(env, fs, args, *jsonOut, *timeout)
		},
	})
}

// pluginInfo is one line of `zhost plugins`.
type pluginInfo struct {
	Name             string   `json:"name"`
	Source           string   `json:"source"`
	Path             string   `json:"path"`
	SHA256           string   `json:"sha256"`
	SHA256Configured string   `json:"sha256_configured"`
	Version          string   `json:"version"`
	ProtocolVersion  int      `json:"protocol_version"`
	Kinds            []string `json:"kinds"`
	Backends         []string `json:"backends"`
	Functions        []string `json:"functions"`
	Error            string   `json:"error"`
}

func runPlugins(env *Env, fs *flag.FlagSet, args []string, jsonOut bool, timeout time.Duration) int {
	if len(args) > 1 {
		fmt.Fprintf(env.Stderr, "zhost plugins: want at most one FILE, have %d arguments\n\n", len(args))
		fs.Usage()
		return ExitUsage
	}
	var plugins []*hcl.Plugin
	baseDir := ""
	if len(args) == 1 {
		path := args[0]
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(env.Stderr, "zhost plugins: %v\n", err)
			return ExitUsage
		}
		p := hcl.NewParser(hcl.Options{StorageTypes: builtin.StorageTypes(), MountFunctions: builtin.MountFunctions()})
		cfg, diags := p.Load(path)
		if diags.HasErrors() {
			// Load gives no Config with errors: there is nothing to list.
			if err := writeDiagnosticFiles(env.Stderr, p.Files(), diags); err != nil {
				fmt.Fprintf(env.Stderr, "zhost plugins: %v\n", err)
			}
			return ExitFailure
		}
		plugins = cfg.Plugins
		baseDir = cfg.Dir
	}

	m, err := pluginhost.NewManager(pluginhost.Options{
		Logger:       hclog.New(&hclog.LoggerOptions{Name: "zhost", Level: hclog.Warn, Output: env.Stderr}),
		StartTimeout: timeout,
		MaxCrashes:   1,
		BaseDir:      baseDir,
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "zhost plugins: %v\n", err)
		return ExitFailure
	}
	defer m.Close()

	infos := []pluginInfo{describePlugin(m, pluginhost.Spec{Name: pluginhost.BuiltinName}, "built in", timeout)}
	for _, hp := range plugins {
		spec := pluginhost.SpecFromConfig(hp)
		src := spec.Location()
		if err := m.Add(spec); err != nil {
			infos = append(infos, pluginInfo{Name: hp.Name, Source: src, Path: hp.Path, SHA256Configured: hp.SHA256, Error: err.Error()})
			continue
		}
		infos = append(infos, describePlugin(m, spec, src, timeout))
	}

	failed := false
	for _, in := range infos {
		if in.Error != "" {
			failed = true
		}
	}
	if jsonOut {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(infos); err != nil {
			fmt.Fprintf(env.Stderr, "zhost plugins: %v\n", err)
			return ExitFailure
		}
	} else {
		writePluginList(env.Stdout, infos)
	}
	if failed {
		return ExitFailure
	}
	return ExitOK
}

func describePlugin(m *pluginhost.Manager, spec pluginhost.Spec, src string, timeout time.Duration) pluginInfo {
	in := pluginInfo{Name: spec.Name, Source: src, SHA256Configured: strings.ToLower(spec.SHA256)}
	if p, err := m.Plugin(spec.Name); err == nil {
		in.Path = p.Status().Path
	}
	if in.Path != "" {
		if sum, err := pluginhost.FileSHA256(in.Path); err == nil {
			in.SHA256 = sum
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Second)
	defer cancel()
	d, err := m.Describe(ctx, spec.Name)
	if err != nil {
		in.Error = err.Error()
		return in
	}
	in.Version, in.ProtocolVersion = d.Version, d.ProtocolVersion
	for _, k := range d.Kinds() {
		in.Kinds = append(in.Kinds, string(k))
	}
	for _, b := range d.Backends {
		in.Backends = append(in.Backends, b.Name)
	}
	for _, f := range d.Functions {
		in.Functions = append(in.Functions, f.Name)
	}
	return in
}

func writePluginList(w io.Writer, infos []pluginInfo) {
	for i, in := range infos {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (%s)\n", in.Name, in.Source)
		row := func(k, v string) {
			if v != "" {
				fmt.Fprintf(w, "  %-10s %s\n", k+":", v)
			}
		}
		row("version", in.Version)
		if in.ProtocolVersion != 0 {
			row("protocol", fmt.Sprint(in.ProtocolVersion))
		}
		row("kinds", strings.Join(in.Kinds, ", "))
		row("backends", strings.Join(in.Backends, ", "))
		row("functions", strings.Join(in.Functions, ", "))
		row("path", in.Path)
		switch {
		case in.SHA256Configured == "":
			row("sha256", in.SHA256)
		case in.SHA256 == in.SHA256Configured:
			row("sha256", in.SHA256+" (matches the config)")
		default:
			row("sha256", in.SHA256+" (the config says "+in.SHA256Configured+")")
		}
		row("error", in.Error)
	}
}
