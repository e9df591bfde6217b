package hcl

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	hcl2 "github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
)

// Options tells the parser what the layers above know: the built-in
// storage types and mount functions, and how to learn an external plugin's
// schemas. This package imports nothing higher than itself, so the caller
// passes these in.
type Options struct {
	// StorageTypes are the built-in storage types and the schemas of their
	// block bodies. A storage whose type is neither here nor a plugin
	// block is an error.
	StorageTypes map[string]Schema
	// MountFunctions are the functions of the "builtin" mount plugin and
	// the schemas of their args. Nil means they are not checked.
	MountFunctions map[string]Schema
	// CheckMountArg, if set, checks one decoded arg of a mount of the
	// "builtin" plugin beyond its schema: what the function would refuse
	// when the mount is resolved at run time. An error is reported at the
	// arg's value.
	CheckMountArg func(function, arg string, value any) error
	// PluginSchemas returns what an external plugin declares. It is called
	// once per plugin block, after the block's own attributes are decoded.
	// Nil means plugins cannot be asked (e.g. they are not built yet):
	// their settings, storages and mount args are then decoded as written
	// and not checked. An error is reported at the plugin block.
	PluginSchemas func(p *Plugin) (*PluginSchemas, error)
	// BaseDir resolves relative paths; empty means the directory of the
	// config file.
	BaseDir string
	// Logger receives debug logs; nil means none.
	Logger hclog.Logger
}

// PluginSchemas is what an external plugin declares about itself.
type PluginSchemas struct {
	// Config is the schema of the plugin block's own settings; nil means
	// the plugin takes none.
	Config *Schema
	// Storage is the schema of a storage block whose type names the
	// plugin; nil means the plugin provides no storage.
	Storage *Schema
	// MountFunctions are the mount functions the plugin exports and the
	// schemas of their args; nil means it exports none.
	MountFunctions map[string]Schema
}

// Parser parses and validates cluster.hcl files and keeps the parsed files
// for diagnostic snippets (hcl2.NewDiagnosticTextWriter). A Parser is not
// safe for concurrent use; use one per goroutine.
type Parser struct {
	opts  Options
	files map[string]*hcl2.File
}

// NewParser returns a Parser with opts.
func NewParser(opts Options) *Parser {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	return &Parser{opts: opts, files: map[string]*hcl2.File{}}
}

// Files returns the files parsed so far by filename, for
// hcl2.NewDiagnosticTextWriter and Report.
func (p *Parser) Files() map[string]*hcl2.File { return p.files }

// Load reads and parses the file at path: JSON syntax when the name ends
// in ".json" (cluster.hcl.json), native syntax otherwise. An unreadable
// file is one error diagnostic without a subject.
func (p *Parser) Load(path string) (*Config, hcl2.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl2.Diagnostics{{
			Severity: hcl2.DiagError,
			Summary:  "Cannot read config file",
			Detail:   fmt.Sprintf("read %s: %v", path, err),
		}}
	}
	return p.Parse(src, path)
}

// Parse parses and validates src as the file filename (which picks the
// syntax and names the file in diagnostics; relative paths resolve against
// its directory unless Options.BaseDir is set). It reports every problem
// it can find in one pass. The Config is nil when the diagnostics hold an
// error; warnings come with a Config.
func (p *Parser) Parse(src []byte, filename string) (*Config, hcl2.Diagnostics) {
	var file *hcl2.File
	var diags hcl2.Diagnostics
	if strings.HasSuffix(filename, ".json") {
		file, diags = hcljson.Parse(src, filename)
	} else {
		file, diags = hclsyntax.ParseConfig(src, filename, hcl2.InitialPos)
	}
	if file != nil {
		p.files[filename] = file
	}
	if diags.HasErrors() || file == nil {
		return nil, diags
	}
	base := p.opts.BaseDir
	if base == "" {
		abs, err := filepath.Abs(filename)
		if err != nil {
			abs = filename
		}
		base = filepath.Dir(abs)
	}
	b := &builder{
		d:       &decoder{baseDir: base},
		opts:    p.opts,
		cfg:     &Config{Filename: filename, Dir: base},
		schemas: map[string]*PluginSchemas{},
		fileRng: file.Body.MissingItemRange(),
	}
	b.d.diags = diags
	b.build(file.Body)
	sortDiags(b.d.diags)
	p.opts.Logger.Debug("config parsed", "file", filename, "diagnostics", len(b.d.diags))
	if b.d.diags.HasErrors() {
		return nil, b.d.diags
	}
	return b.cfg, b.d.diags
}

// sortDiags orders diagnostics by position, those without one first, so a
// report reads top to bottom like the file.
func sortDiags(diags hcl2.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

// Load reads, parses and validates the cluster.hcl at path with a new
// Parser. Use a Parser to print diagnostics with source snippets.
func Load(path string, opts Options) (*Config, hcl2.Diagnostics) {
	return NewParser(opts).Load(path)
}

// Parse parses and validates src as the file filename with a new Parser.
func Parse(src []byte, filename string, opts Options) (*Config, hcl2.Diagnostics) {
	return NewParser(opts).Parse(src, filename)
}
