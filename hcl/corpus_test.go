package hcl

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	hcl2 "github.com/hashicorp/hcl/v2"
)

// testOptions stands in for the schemas the built-in plugin declares
// (plugins/builtin; this layer cannot import it), with bounds and enums so
// every kind of schema check is exercised.
func testOptions() Options {
	return Options{
		StorageTypes: map[string]Schema{
			"filestorage": {Attributes: []Attribute{
				{Name: "path", Type: TypePath, Required: true},
				{Name: "sync", Type: TypeString, Default: "group", Enum: []string{"always", "group", "none"}},
				{Name: "keep_old", Type: TypeBool, Default: false},
				{Name: "read_only", Type: TypeBool, Default: false},
			}},
			"packless": {Attributes: []Attribute{
				{Name: "path", Type: TypePath, Required: true},
				{Name: "sync", Type: TypeBool, Default: true},
				{Name: "cache_size", Type: TypeSize, Default: "8MiB", Min: "0", Max: "64GiB"},
				{Name: "bloom_bits", Type: TypeNumber, Default: float64(10), Min: "0", Max: "64"},
				{Name: "write_buffer", Type: TypeSize, Default: "4MiB", Min: "64KiB", Max: "1GiB"},
			}},
		},
		MountFunctions: map[string]Schema{
			"mount_partition": {Attributes: []Attribute{
				{Name: "partition", Type: TypeString, Required: true},
				{Name: "folder", Type: TypeString, Default: ""},
			}},
		},
	}
}

// want is one expected diagnostic, written at the end of a corpus file as
// "# want: error 12:3 Unknown storage type".
type want struct {
	severity  string
	line, col int
	summary   string
}

func (w want) String() string {
	return fmt.Sprintf("%s %d:%d %s", w.severity, w.line, w.col, w.summary)
}

var wantRE = regexp.MustCompile(`(?m)^# want: (error|warning) (\d+):(\d+) (.+)$`)

func parseWants(t *testing.T, src []byte) []want {
	t.Helper()
	var out []want
	for _, m := range wantRE.FindAllStringSubmatch(string(src), -1) {
		var w want
		w.severity, w.summary = m[1], strings.TrimSpace(m[4])
		fmt.Sscan(m[2], &w.line)
		fmt.Sscan(m[3], &w.col)
		out = append(out, w)
	}
	return out
}

func gotWants(diags hcl2.Diagnostics) []want {
	var out []want
	for _, d := range diags {
		w := want{severity: "error", summary: d.Summary}
		if d.Severity == hcl2.DiagWarning {
			w.severity = "warning"
		}
		if d.Subject != nil {
			w.line, w.col = d.Subject.Start.Line, d.Subject.Start.Column
		}
		out = append(out, w)
	}
	return out
}

func wantStrings(ws []want) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.String()
	}
	sort.Strings(out)
	return out
}

// TestInvalidCorpus parses every file of testdata/invalid and checks that
// it yields exactly the diagnostics its "# want:" lines list: severity,
// line:column of the subject, and summary. Each file holds at least one
// error.
func TestInvalidCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("the invalid corpus has %d files; want at least 40", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".hcl"), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wants := parseWants(t, src)
			cfg, diags := Parse(src, f, testOptions())
			got := wantStrings(gotWants(diags))
			if os.Getenv("HCL_CORPUS_DUMP") != "" {
				for _, d := range diags {
					t.Logf("%s: %s: %s", d.Subject, d.Summary, d.Detail)
				}
			}
			if len(wants) == 0 {
				t.Fatalf("no '# want:' lines; got:\n# want: %s", strings.Join(got, "\n# want: "))
			}
			if !diags.HasErrors() || cfg != nil {
				t.Fatalf("want errors and a nil config; got %d diagnostics, config %v", len(diags), cfg != nil)
			}
			if w := wantStrings(wants); strings.Join(w, "\n") != strings.Join(got, "\n") {
				t.Errorf("diagnostics differ\nwant:\n  %s\ngot:\n  %s", strings.Join(w, "\n  "), strings.Join(got, "\n  "))
				for _, d := range diags {
					t.Logf("%s: %s: %s", d.Subject, d.Summary, d.Detail)
				}
			}
			for _, d := range diags {
				if d.Summary == "" || d.Detail == "" {
					t.Errorf("diagnostic without summary or detail: %+v", d)
				}
			}
		})
	}
}

// TestValidCorpus checks that every file of testdata/valid and examples/
// parses without errors, and that the warnings listed in a file (as
// "# want: warning ...") are exactly the ones reported.
func TestValidCorpus(t *testing.T) {
	var files []string
	for _, pat := range []string{"testdata/valid/*.hcl", "testdata/valid/*.hcl.json", "../examples/*.hcl", "../examples/*.hcl.json", "../examples/*/*.hcl", "../examples/*/*.hcl.json"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("only %d valid configs found", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, diags := Parse(src, f, testOptions())
			if diags.HasErrors() || cfg == nil {
				for _, d := range diags {
					t.Errorf("%s: %s: %s", d.Subject, d.Summary, d.Detail)
				}
				t.FailNow()
			}
			w := wantStrings(parseWants(t, src))
			if got := wantStrings(gotWants(diags)); strings.Join(w, "\n") != strings.Join(got, "\n") {
				t.Errorf("warnings differ\nwant:\n  %s\ngot:\n  %s", strings.Join(w, "\n  "), strings.Join(got, "\n  "))
			}
			if len(cfg.Nodes()) == 0 {
				t.Errorf("valid config without nodes")
			}
		})
	}
}
