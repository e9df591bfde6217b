package hcl

import (
	"bytes"
	"io"
	"testing"

	hcl2 "github.com/hashicorp/hcl/v2"
)

// FuzzValidate runs parse+validate, the JSON report and the text writer on
// arbitrary input in both syntaxes. It must never panic, and its results
// must hold together: a config exactly when there is no error, every
// diagnostic with a summary and a sane range. The seed corpus is in
// testdata/fuzz/FuzzValidate; `make fuzz` runs it for a minute.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(`client "a" { listen = "127.0.0.1:1" server = "h:1" }`), false)
	f.Add([]byte(`{"client": {"a": {"listen": "127.0.0.1:1", "server": "h:1"}}}`), true)
	f.Fuzz(func(t *testing.T, src []byte, json bool) {
		name := "fuzz.hcl"
		if json {
			name = "fuzz.hcl.json"
		}
		p := NewParser(pluginOptions())
		cfg, diags := p.Parse(src, name)
		if diags.HasErrors() != (cfg == nil) {
			t.Fatalf("errors %v but config %v", diags.HasErrors(), cfg != nil)
		}
		if cfg != nil && len(cfg.Nodes()) == 0 {
			t.Fatalf("a valid config without nodes")
		}
		for _, d := range diags {
			if d.Summary == "" {
				t.Fatalf("diagnostic without summary: %+v", d)
			}
			if s := d.Subject; s != nil && (s.Start.Byte > s.End.Byte || s.Start.Byte < 0 || s.End.Byte > len(src)+1) {
				t.Fatalf("bad subject %v for %d bytes of input", s, len(src))
			}
		}
		rep := NewReport(diags, p.Files())
		if rep.ErrorCount+rep.WarningCount != len(diags) || rep.Valid != (cfg != nil) {
			t.Fatalf("report counts %d+%d for %d diagnostics", rep.ErrorCount, rep.WarningCount, len(diags))
		}
		var buf bytes.Buffer
		wr := hcl2.NewDiagnosticTextWriter(io.Writer(&buf), p.Files(), 78, false)
		if err := wr.WriteDiagnostics(diags); err != nil {
			t.Fatalf("write diagnostics: %v", err)
		}
	})
}
