package hcl

import (
	"flag"
	"os"
	"strings"
	"testing"

	hcl2 "github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

var update = flag.Bool("update", false, "rewrite the generated sections of docs/config.md")

const (
	refBegin = "<!-- BEGIN REFERENCE: generated from hcl/spec.go; `go test ./hcl -run TestConfigDocs -update` rewrites it -->\n"
	refEnd   = "<!-- END REFERENCE -->\n"
)

// TestConfigDocs keeps the reference section of docs/config.md in step
// with the language: it must be exactly what ReferenceMarkdown generates.
func TestConfigDocs(t *testing.T) {
	const path = "../docs/config.md"
	doc := readFile(t, path)
	i := strings.Index(doc, refBegin)
	j := strings.Index(doc, refEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no reference section between %q and %q", path, refBegin, refEnd)
	}
	want := ReferenceMarkdown()
	got := doc[i+len(refBegin) : j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc[:i+len(refBegin)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the reference in %s is stale; run `go test ./hcl -run TestConfigDocs -update`", path)
}

// TestReferenceCoversSpec checks the generated reference itself: every
// block and attribute appears with a type, a default and an example, so
// nothing is added to the language undocumented.
func TestReferenceCoversSpec(t *testing.T) {
	ref := ReferenceMarkdown()
	var walk func(bs *blockSpec)
	walk = func(bs *blockSpec) {
		if bs.Name != "" {
			if bs.Description == "" || bs.Example == "" {
				t.Errorf("block %s: missing description or example", bs.Name)
			}
			if !strings.Contains(ref, "`"+bs.Name) {
				t.Errorf("block %s is not in the reference", bs.Name)
			}
			// The example must itself be valid syntax.
			if _, diags := hclsyntax.ParseConfig([]byte(bs.Example), "example.hcl", hcl2.InitialPos); diags.HasErrors() {
				t.Errorf("block %s: example does not parse: %v", bs.Name, diags)
			}
		}
		for _, a := range bs.Attrs {
			if a.Description == "" || a.Example == "" {
				t.Errorf("%s.%s: missing description or example", bs.Name, a.Name)
			}
			if !a.Required && a.Default == "" && a.DefaultDoc == "" {
				t.Errorf("%s.%s: the default is not documented", bs.Name, a.Name)
			}
			if !strings.Contains(ref, "| `"+a.Name+"` |") {
				t.Errorf("%s.%s is not in the reference", bs.Name, a.Name)
			}
			if a.Default != "" {
				if _, ok := (&decoder{}).defaultOf(&a); !ok {
					t.Errorf("%s.%s: default %s does not decode", bs.Name, a.Name, a.Default)
				}
			}
			// The example must decode as a value of the attribute (bar
			// references, which need the whole file).
			if a.Kind != kRef && a.Kind != kRefList && a.Kind != kPluginRef {
				ex := a
				ex.Default, ex.hasDefault = a.Example, false
				if _, ok := (&decoder{}).defaultOf(&ex); !ok {
					t.Errorf("%s.%s: example %s does not decode", bs.Name, a.Name, a.Example)
				}
			}
		}
		for _, c := range bs.Blocks {
			walk(c)
		}
	}
	walk(spec)
}
