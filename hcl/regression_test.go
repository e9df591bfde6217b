package hcl

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// schemaWithEveryKind declares an attribute of each type that decoding
// changes, with defaults.
var schemaWithEveryKind = Schema{Attributes: []Attribute{
	{Name: "path", Type: TypePath, Required: true},
	{Name: "index", Type: TypePath, Default: "idx/main"},
	{Name: "cache", Type: TypeSize, Default: "1MiB", Max: "1GiB"},
	{Name: "ttl", Type: TypeDuration, Default: "1h"},
	{Name: "n", Type: TypeNumber},
	{Name: "tags", Type: TypeStringList},
	{Name: "env", Type: TypeStringMap},
	{Name: "mode", Type: TypeString, Enum: []string{"a", "b"}, Default: "a"},
}}

// TestRegressionDefaultPathResolved: a path default a backend or plugin
// declares was handed over as written ("idx/main"), relative to whatever
// directory the plugin runs in, while written paths resolve against the
// config file's directory.
func TestRegressionDefaultPathResolved(t *testing.T) {
	dir := t.TempDir()
	src := `server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "kinds"
  path = "data/main"
}
partition "main" { storage = storage.main }
`
	cfg, diags := Parse([]byte(src), filepath.Join(dir, "cluster.hcl"), Options{StorageTypes: map[string]Schema{"kinds": schemaWithEveryKind}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got, want := cfg.Storage("main").Config["index"], filepath.Join(dir, "idx/main"); got != want {
		t.Fatalf("index = %#v, want %#v", got, want)
	}
}

// TestRegressionNormalize: Schema.Normalize turns settings as written
// (JSON-compatible, what a Config holds for a plugin whose schema was not
// asked for) into what decoding with the schema gives, and leaves decoded
// ones as they are.
func TestRegressionNormalize(t *testing.T) {
	written := Values{
		"path": "data/main", "cache": "2MiB", "ttl": "7d", "n": float64(3),
		"tags": []any{"x", "y"}, "env": map[string]any{"K": "v"}, "other": "kept",
	}
	want := Values{
		"path": "/cfg/data/main", "index": "/cfg/idx/main", "cache": int64(2 << 20),
		"ttl": (7 * 24 * time.Hour).String(), "n": float64(3), "tags": []string{"x", "y"},
		"env": map[string]string{"K": "v"}, "mode": "a", "other": "kept",
	}
	got, err := schemaWithEveryKind.Normalize(written, "/cfg")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Normalize(written) =\n%#v\nwant\n%#v", got, want)
	}
	again, err := schemaWithEveryKind.Normalize(got, "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("Normalize twice =\n%#v\nwant\n%#v", again, want)
	}
	for _, bad := range []Values{
		{},                                     // path is required
		{"path": "p", "cache": "2GiB"},         // above Max
		{"path": "p", "ttl": "soon"},           // not a duration
		{"path": "p", "mode": "c"},             // not in the enum
		{"path": "p", "tags": []any{"x", 1.0}}, // not a string
	} {
		if _, err := schemaWithEveryKind.Normalize(bad, "/cfg"); err == nil {
			t.Errorf("Normalize(%v) accepted it", bad)
		}
	}
}
