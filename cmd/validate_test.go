package zhostcmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/internal/testbin"
	"github.com/zhostdb/zhost/plugins/builtin"
)

// runCmd runs the command line in-process and returns the exit code and
// what it wrote.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(&Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")}, args)
	return code, out.String(), errOut.String()
}

func writeTemp(t *testing.T, name, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestValidateExamples: every config in examples/ validates, in both
// output modes, with exit code 0.
func TestValidateExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/*.hcl*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d examples, want cluster.hcl, cluster.hcl.json and multi-machine.hcl", len(files))
	}
	// Examples of external plugins validate offline: their binaries are
	// built by `make plugins`, which a plain go test has not run.
	sub, err := filepath.Glob("../examples/*/*.hcl*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sub {
		if code, out, errOut := runCmd(t, "validate", "-offline", f); code != ExitOK {
			t.Errorf("validate -offline %s: exit %d\nstdout: %s\nstderr: %s", f, code, out, errOut)
		}
	}
	for _, f := range files {
		code, out, errOut := runCmd(t, "validate", f)
		if code != ExitOK || !strings.Contains(out, "is valid") {
			t.Errorf("validate %s: exit %d\nstdout: %s\nstderr: %s", f, code, out, errOut)
		}
		code, out, _ = runCmd(t, "validate", "-json", f)
		var rep hcl.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("validate -json %s: %v\n%s", f, err, out)
		}
		if code != ExitOK || !rep.Valid || rep.ErrorCount != 0 || !strings.Contains(out, `"diagnostics": []`) {
			t.Errorf("validate -json %s: exit %d, report %s", f, code, out)
		}
	}
}

const badConfig = `server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorag"
  path = "var/Data.fs"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
client "app2" { listen = "127.0.0.1:8081" }
`

// TestValidateInvalidText: every problem is printed with file, line and a
// source snippet, and the exit code is 1.
func TestValidateInvalidText(t *testing.T) {
	p := writeTemp(t, "cluster.hcl", badConfig)
	code, out, errOut := runCmd(t, "validate", p)
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	if out != "" {
		t.Errorf("stdout = %q, want nothing", out)
	}
	for _, want := range []string{
		"Error: Unknown storage type",
		"on " + p + " line 3, in storage \"main\":",
		`   3:   type = "filestorag"`,
		`Did you mean "filestorage"?`,
		"Error: Port clash",
		"on " + p + " line 8, in client \"app2\":",
		"is invalid: 2 errors, 0 warnings.",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

// TestValidateInvalidJSON checks the -json shape field by field.
func TestValidateInvalidJSON(t *testing.T) {
	p := writeTemp(t, "cluster.hcl", badConfig)
	code, out, _ := runCmd(t, "validate", "-json", p)
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, ","); got != "diagnostics,error_count,valid,warning_count" {
		t.Errorf("top-level keys = %s", got)
	}
	var rep hcl.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Valid || rep.ErrorCount != 2 || rep.WarningCount != 0 || len(rep.Diagnostics) != 2 {
		t.Fatalf("report = %+v", rep)
	}
	d := rep.Diagnostics[0]
	if d.Severity != "error" || d.Summary != "Unknown storage type" || d.Detail == "" {
		t.Errorf("diagnostic = %+v", d)
	}
	if d.Range == nil || d.Range.Filename != p || d.Range.Start.Line != 3 || d.Range.Start.Column != 10 || d.Range.End.Column != 22 {
		t.Errorf("range = %+v", d.Range)
	}
	sn := d.Snippet
	if sn == nil || sn.Code != `  type = "filestorag"` || sn.StartLine != 3 || sn.Context != `storage "main"` ||
		sn.Code[sn.HighlightStartOffset:sn.HighlightEndOffset] != `"filestorag"` {
		t.Errorf("snippet = %+v", sn)
	}
}

// TestValidateJSONSyntax: a .hcl.json file is read as HCL's JSON syntax.
func TestValidateJSONSyntax(t *testing.T) {
	p := writeTemp(t, "cluster.hcl.json", `{"client": {"app1": {"listen": "127.0.0.1:8081", "server": "10.0.0.1:9100", "cache_size": "lots"}}}`)
	code, out, _ := runCmd(t, "validate", "-json", p)
	var rep hcl.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != ExitFailure || len(rep.Diagnostics) != 1 || rep.Diagnostics[0].Summary != "Invalid size" ||
		rep.Diagnostics[0].Range.Start.Line != 1 || rep.Diagnostics[0].Range.Start.Column != 91 {
		t.Errorf("exit %d, report %s", code, out)
	}
	p = writeTemp(t, "broken.hcl.json", `{"client": `)
	if code, _, errOut := runCmd(t, "validate", p); code != ExitFailure || !strings.Contains(errOut, "Error: ") {
		t.Errorf("broken JSON: exit %d\n%s", code, errOut)
	}
}

// TestValidateWarnings: warnings are printed and the exit code is 0.
func TestValidateWarnings(t *testing.T) {
	p := writeTemp(t, "cluster.hcl", `server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "filestorage"
  path = "var/Data.fs"
}
storage "spare" {
  type = "packless"
  path = "var/spare"
}
partition "main" { storage = storage.main }
client "app1" { listen = "127.0.0.1:8081" }
`)
	code, out, errOut := runCmd(t, "validate", p)
	if code != ExitOK || !strings.Contains(errOut, "Warning: Unused storage") || !strings.Contains(out, "is valid, with 1 warning.") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, out, _ = runCmd(t, "validate", "-json", p)
	var rep hcl.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if code != ExitOK || !rep.Valid || rep.WarningCount != 1 || rep.Diagnostics[0].Severity != "warning" {
		t.Errorf("exit %d, report %s", code, out)
	}
}

// TestValidateUsage: usage errors and unreadable files exit 2.
func TestValidateUsage(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"validate"}, "want exactly one FILE"},
		{"two files", []string{"validate", "a.hcl", "b.hcl"}, "want exactly one FILE"},
		{"bad flag", []string{"validate", "-yaml", "a.hcl"}, "flag provided but not defined"},
		{"missing file", []string{"validate", filepath.Join(dir, "missing.hcl")}, "no such file"},
		{"directory", []string{"validate", dir}, "is a directory"},
	}
	for _, c := range cases {
		code, _, errOut := runCmd(t, c.args...)
		if code != ExitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q", c.name, code, errOut)
		}
	}
	code, out, _ := runCmd(t, "validate", "-json", filepath.Join(dir, "missing.hcl"))
	var rep hcl.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != ExitUsage || rep.Valid || rep.ErrorCount != 1 || rep.Diagnostics[0].Range != nil || rep.Diagnostics[0].Summary != "Cannot read config file" {
		t.Errorf("missing file -json: exit %d, report %s", code, out)
	}
}

// TestValidateHelp: the help texts exist and exit 0.
func TestValidateHelp(t *testing.T) {
	code, out, _ := runCmd(t, "validate", "--help")
	if code != ExitOK || !strings.Contains(out, "Usage: zhost validate [-json] [-offline] FILE") || !strings.Contains(out, "-json") || !strings.Contains(out, "Exit status") {
		t.Errorf("validate --help: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "--help")
	if code != ExitOK || !strings.Contains(out, "validate") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "version")
	if code != ExitOK || !strings.HasPrefix(out, "zhost ") {
		t.Errorf("version: exit %d\n%s", code, out)
	}
}

// TestValidateNeverPanics feeds hostile inputs through the whole command.
func TestValidateNeverPanics(t *testing.T) {
	inputs := []string{
		"", "\x00\xff\xfe", "{", `server "zeo" {`, strings.Repeat("{", 1000),
		`client "a" { listen = "${x}" }`, `client "a" { listen = [for x in y : x] }`,
		`mount "m" { args = { (x) = 1 } }`, `balancer "b" { clients = client }`,
		`storage "s" { type = "packless" nested { } }`, `sessions { container = "/\x01" }`,
	}
	for i, in := range inputs {
		for _, name := range []string{"c.hcl", "c.hcl.json"} {
			p := writeTemp(t, name, in)
			code, _, errOut := runCmd(t, "validate", p)
			if code != ExitOK && code != ExitFailure {
				t.Errorf("input %d (%s): exit %d", i, name, code)
			}
			if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") {
				t.Errorf("input %d (%s): stack trace:\n%s", i, name, errOut)
			}
		}
	}
}

const (
	storageBegin = "<!-- BEGIN STORAGE TYPES: generated from the built-in storage schemas; `ZHOST_UPDATE_DOCS=1 go test ./cmd -run TestStorageTypeDocs` rewrites it -->\n"
	storageEnd   = "<!-- END STORAGE TYPES -->\n"
	mountBegin   = "<!-- BEGIN MOUNT FUNCTIONS: generated from the built-in mount function schemas; `ZHOST_UPDATE_DOCS=1 go test ./cmd -run TestStorageTypeDocs` rewrites it -->\n"
	mountEnd     = "<!-- END MOUNT FUNCTIONS -->\n"
)

func schemaSections(m map[string]hcl.Schema) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString("### `" + n + "`\n\n" + hcl.SchemaMarkdown(m[n]) + "\n")
	}
	return b.String()
}

// TestStorageTypeDocs keeps docs/config.md's storage type and mount
// function sections in step with the schemas the built-in plugin declares
// (the ones validate checks against).
func TestStorageTypeDocs(t *testing.T) {
	const path = "../docs/config.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	changed := false
	for _, sec := range []struct{ begin, end, want string }{
		{storageBegin, storageEnd, schemaSections(builtin.StorageTypes())},
		{mountBegin, mountEnd, schemaSections(builtin.MountFunctions())},
	} {
		i, j := strings.Index(doc, sec.begin), strings.Index(doc, sec.end)
		if i < 0 || j < i {
			t.Fatalf("%s lacks the section %q", path, sec.begin)
		}
		if doc[i+len(sec.begin):j] != sec.want {
			doc = doc[:i+len(sec.begin)] + sec.want + doc[j:]
			changed = true
		}
	}
	if !changed {
		return
	}
	if os.Getenv("ZHOST_UPDATE_DOCS") != "" {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is stale; run `ZHOST_UPDATE_DOCS=1 go test ./cmd -run TestStorageTypeDocs`", path)
}

// TestValidateExternalPlugin: validate starts an external plugin to learn
// its storage schema, so a mistake in a storage of that type is reported
// at its line; -offline takes the settings as written.
func TestValidateExternalPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the example storage plugin")
	}
	bin := testbin.Build(t, "ZHOST_CUSTOM_STORAGE", "./examples/custom-storage", "zhost-plugin-custom-storage")
	cfg := `server "zeo" { listen = "127.0.0.1:9100" }
plugin "custom" { path = %q }
storage "c" {
  type = "custom"
  path = "var/c.jsonl"
  %s
}
partition "main" { storage = storage.c }
client "app1" { listen = "127.0.0.1:8081" }
`
	good := writeTemp(t, "good.hcl", fmt.Sprintf(cfg, bin, "sync = false"))
	if code, out, errOut := runCmd(t, "validate", good); code != ExitOK {
		t.Fatalf("valid plugin config: exit %d\n%s%s", code, out, errOut)
	}
	bad := writeTemp(t, "bad.hcl", fmt.Sprintf(cfg, bin, "synk = false"))
	code, out, _ := runCmd(t, "validate", "-json", bad)
	var rep hcl.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != ExitFailure || len(rep.Diagnostics) != 1 || rep.Diagnostics[0].Summary != "Unsupported argument" ||
		rep.Diagnostics[0].Range.Start.Line != 6 || rep.Diagnostics[0].Range.Start.Column != 3 {
		t.Errorf("misspelt plugin setting: exit %d, report %s", code, out)
	}
	if code, out, errOut := runCmd(t, "validate", "-offline", bad); code != ExitOK {
		t.Errorf("-offline: exit %d\n%s%s", code, out, errOut)
	}
	missing := writeTemp(t, "missing.hcl", fmt.Sprintf(cfg, filepath.Join(t.TempDir(), "nope"), ""))
	code, _, errOut := runCmd(t, "validate", missing)
	if code != ExitFailure || !strings.Contains(errOut, "Cannot load plugin schema") || !strings.Contains(errOut, "line 2") {
		t.Errorf("missing plugin binary: exit %d\n%s", code, errOut)
	}
}
