package hcl

import (
	"strings"
	"testing"
	"time"

	hcl2 "github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
)

var backendSchema = Schema{Attributes: []Attribute{
	{Name: "path", Type: TypePath, Required: true},
	{Name: "mode", Type: TypeString, Default: "fast", Enum: []string{"fast", "safe"}},
	{Name: "ratio", Type: TypeNumber, Default: 0.5, Min: "0", Max: "1"},
	{Name: "sync", Type: TypeBool, Default: true},
	{Name: "timeout", Type: TypeDuration, Default: "20m", Min: "1s"},
	{Name: "cache", Type: TypeSize, Default: "8MiB", Max: "1GiB"},
	{Name: "hosts", Type: TypeStringList, Default: []string{"a"}},
	{Name: "labels", Type: TypeStringMap},
}}

func parseBody(t *testing.T, src string) hcl2.Body {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "b.hcl", hcl2.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f.Body
}

func TestDecodeBody(t *testing.T) {
	body := parseBody(t, `
path    = "data/x"
mode    = "safe"
timeout = "90s"
cache   = "1MiB"
labels  = { a = "b" }
legacy  = 1
`)
	v, diags := DecodeBody(body, backendSchema, DecodeOptions{BaseDir: "/srv", Skip: []string{"legacy"}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eq(t, "values", v, Values{
		"path": "/srv/data/x", "mode": "safe", "ratio": 0.5, "sync": true, "timeout": "1m30s",
		"cache": int64(1 << 20), "hosts": []string{"a"}, "labels": map[string]string{"a": "b"},
	})
	eq(t, "String", v.String("mode"), "safe")
	eq(t, "Bool", v.Bool("sync"), true)
	eq(t, "Number", v.Number("ratio"), 0.5)
	eq(t, "Duration", v.Duration("timeout"), 90*time.Second)
	eq(t, "Size", v.Size("cache"), int64(1<<20))
	eq(t, "Strings", v.Strings("hosts"), []string{"a"})
	eq(t, "StringMap", v.StringMap("labels"), map[string]string{"a": "b"})
	eq(t, "Has", v.Has("legacy"), false)

	// Every kind of mistake, each at its line, in one pass.
	body = parseBody(t, `mode = "slow"
ratio = 2
timeout = "0s"
cache = "2GiB"
sync = "maybe"
hosts = "a"
extra = 1
`)
	_, diags = DecodeBody(body, backendSchema, DecodeOptions{})
	eq(t, "diagnostics", wantStrings(gotWants(diags)), wantStrings([]want{
		{"error", 1, 8, "Unsupported value"},
		{"error", 2, 9, "Value out of range"},
		{"error", 3, 11, "Value out of range"},
		{"error", 4, 9, "Value out of range"},
		{"error", 5, 8, "Incorrect attribute value type"},
		{"error", 6, 9, "Incorrect attribute value type"},
		{"error", 7, 1, "Unsupported argument"},
		{"error", 1, 1, "Missing required argument"},
	}))

	// A broken schema is one error, not a panic.
	_, diags = DecodeBody(body, Schema{Attributes: []Attribute{{Name: "x", Type: "float"}}}, DecodeOptions{})
	if len(diags) != 1 || diags[0].Summary != "Invalid declared schema" {
		t.Errorf("broken schema: %v", diags)
	}
}

// TestDecodeBodyJSON: the same schema decodes JSON syntax.
func TestDecodeBodyJSON(t *testing.T) {
	f, diags := hcljson.Parse([]byte(`{"path": "/x", "cache": 1048576, "hosts": ["a", "b"], "timeout": "1h"}`), "b.json")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	v, diags := DecodeBody(f.Body, backendSchema, DecodeOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eq(t, "cache", v.Size("cache"), int64(1<<20))
	eq(t, "hosts", v.Strings("hosts"), []string{"a", "b"})
	eq(t, "timeout", v.Duration("timeout"), time.Hour)
}

// TestValuesAfterJSON: the getters read what a Values holds after a trip
// through JSON (numbers as float64, lists as []any).
func TestValuesAfterJSON(t *testing.T) {
	v := Values{"n": float64(3), "size": float64(1024), "d": "20m0s", "l": []any{"a", 1, "b"}, "m": map[string]any{"k": "v", "x": 1}, "u": uint64(7)}
	eq(t, "Int", v.Int("n"), int64(3))
	eq(t, "Size", v.Size("size"), int64(1024))
	eq(t, "Duration", v.Duration("d"), 20*time.Minute)
	eq(t, "Strings", v.Strings("l"), []string{"a", "b"})
	eq(t, "StringMap", v.StringMap("m"), map[string]string{"k": "v"})
	eq(t, "uint", v.Number("u"), float64(7))
	// Absent or mistyped: zero values, no panic.
	eq(t, "absent", v.String("nope"), "")
	eq(t, "mistyped", v.Bool("n"), false)
	eq(t, "mistyped dur", v.Duration("n"), time.Duration(0))
	eq(t, "mistyped list", v.Strings("n"), []string(nil))
}

func TestSchemaCheck(t *testing.T) {
	if err := backendSchema.Check(); err != nil {
		t.Fatalf("good schema: %v", err)
	}
	bad := Schema{Attributes: []Attribute{
		{Name: "1x", Type: TypeString},
		{Name: "a", Type: TypeString},
		{Name: "a", Type: TypeString},
		{Name: "b", Type: "float"},
		{Name: "c", Type: TypeBool, Enum: []string{"x"}},
		{Name: "d", Type: TypeDuration, Min: "soon"},
		{Name: "e", Type: TypeSize, Default: "lots"},
		{Name: "f", Type: TypeString, Required: true, Default: "x"},
		{Name: "g", Type: TypeString, Enum: []string{"x"}, Default: "y"},
		{Name: "h", Type: TypeNumber, Default: "1"},
	}}
	err := bad.Check()
	if err == nil {
		t.Fatal("bad schema passed Check")
	}
	for _, want := range []string{`"1x"`, `"a": declared twice`, `"b": unknown type`, `"c": enum`, `"d": bound`, `"e": default`, `"f": required and has a default`, `"g": default`, `"h": default`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error lacks %q:\n%v", want, err)
		}
	}
}
