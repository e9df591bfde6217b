package hcl

import (
	"path/filepath"
	"reflect"
	"strings"
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
// ones as they are. A name the schema does not declare is refused, as
// decoding refuses it, unless the caller names it as the host's own.
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
	got, err := schemaWithEveryKind.Normalize(written, "/cfg", "other")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Normalize(written) =\n%#v\nwant\n%#v", got, want)
	}
	again, err := schemaWithEveryKind.Normalize(got, "/elsewhere", "other")
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
	_, err = schemaWithEveryKind.Normalize(Values{"path": "p", "cahce": "2MiB", "other": "x"}, "/cfg", "path")
	if err == nil {
		t.Fatal("Normalize accepted undeclared names")
	}
	for _, want := range []string{`cahce: unsupported`, `Did you mean "cache"?`, `other: unsupported`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Normalize error %q does not say %s", err, want)
		}
	}
	if _, err := (Schema{}).Normalize(Values{"x": "1"}, "/cfg"); err == nil || !strings.Contains(err.Error(), "none is declared") {
		t.Errorf("Normalize with an empty schema: %v, want x refused (none is declared)", err)
	}
}

// TestRegressionPortClashPerLoopbackAddress: nodes on two loopback
// addresses may use one port (both bind on Linux); the check counted
// every loopback address as one and refused such a file. localhost still
// clashes with 127.0.0.1.
func TestRegressionPortClashPerLoopbackAddress(t *testing.T) {
	const head = `server "zeo" { listen = "127.0.0.1:9100" }
storage "main" {
  type = "memory"
}
partition "main" { storage = storage.main }
`
	for _, c := range []struct {
		a, b  string
		clash bool
	}{
		{"127.0.0.1:8081", "127.0.0.2:8081", false},
		{"127.0.0.1:8081", "[::1]:8081", false},
		{"localhost:8081", "127.0.0.1:8081", true},
		{"127.0.0.1:8081", "127.0.0.1:8081", true},
		{"0.0.0.0:8081", "127.0.0.2:8081", true},
	} {
		src := head + `client "app1" { listen = "` + c.a + `" }
client "app2" { listen = "` + c.b + `" }
`
		_, diags := Parse([]byte(src), filepath.Join(t.TempDir(), "cluster.hcl"), Options{StorageTypes: map[string]Schema{"memory": {}}})
		clash := false
		for _, d := range diags {
			clash = clash || d.Summary == "Port clash"
		}
		if clash != c.clash {
			t.Errorf("%s and %s: port clash reported %v, want %v (%v)", c.a, c.b, clash, c.clash, diags)
		}
	}
}

// TestRegressionDefaultWithinBounds: a schema whose default lies outside
// its own Min and Max (or is a size too large for int64) is refused when
// it is checked, as a written value would be; it was accepted and the
// default used.
func TestRegressionDefaultWithinBounds(t *testing.T) {
	for _, a := range []Attribute{
		{Name: "n", Type: TypeNumber, Default: 20, Max: "10"},
		{Name: "ttl", Type: TypeDuration, Default: "1s", Min: "1m"},
		{Name: "cache", Type: TypeSize, Default: "2GiB", Max: "1GiB"},
		{Name: "cache", Type: TypeSize, Default: 1e300},
	} {
		if err := (Schema{Attributes: []Attribute{a}}).Check(); err == nil {
			t.Errorf("schema with %+v: Check accepted a default outside the attribute's range", a)
		}
	}
	ok := Schema{Attributes: []Attribute{{Name: "n", Type: TypeNumber, Default: 5, Min: "1", Max: "10"}}}
	if err := ok.Check(); err != nil {
		t.Errorf("default within bounds refused: %v", err)
	}
}
