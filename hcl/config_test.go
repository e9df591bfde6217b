package hcl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	hcl2 "github.com/hashicorp/hcl/v2"
)

func mustParseFile(t *testing.T, path string, opts Options) *Config {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := Parse(src, path, opts)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %v", path, diags)
	}
	return cfg
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// TestFullConfig checks every decoded field of testdata/valid/full.hcl.
func TestFullConfig(t *testing.T) {
	cfg := mustParseFile(t, "testdata/valid/full.hcl", testOptions())
	dir, err := filepath.Abs("testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	p := func(rel string) string { return filepath.Join(dir, rel) }

	eq(t, "Dir", cfg.Dir, dir)
	eq(t, "PluginDir", cfg.PluginDir, "/opt/zhost/plugins")
	eq(t, "PluginHangTimeout", cfg.PluginHangTimeout, 5*time.Minute)
	eq(t, "machines", len(cfg.Machines), 2)
	eq(t, "web1 address", cfg.Machine("web1").Address, "web1.internal")

	s := cfg.Server
	eq(t, "server name", s.Name, "zeo")
	eq(t, "server kind", s.Kind, KindServer)
	eq(t, "server machine", s.Machine, "db1")
	eq(t, "server listen", s.Listen, "0.0.0.0:9100")
	eq(t, "server advertise", s.Advertise, "db1.internal:9100")
	eq(t, "server pid", s.PidFile, p("run/zeo.pid"))
	eq(t, "server log", s.LogFile, "/var/log/zhost/zeo.log")
	eq(t, "commit timeout", s.CommitTimeout, 10*time.Second)
	eq(t, "txn timeout", s.TransactionTimeout, time.Minute)
	eq(t, "inval log", s.InvalidationLogSize, int64(50000))
	eq(t, "max msg", s.MaxMessageSize, int64(256<<20))
	eq(t, "busy poll", s.BusyPoll, 100*time.Microsecond)
	eq(t, "server tls", *s.TLS, ServerTLS{DeclRange: s.TLS.DeclRange, CertFile: p("tls/server.pem"), KeyFile: p("tls/server-key.pem"), ClientCAFile: p("tls/clients-ca.pem"), RequireClientCert: true})
	if r := s.RangeOf("commit_timeout"); r.Start.Line != 15 || r.Start.Column != 27 {
		t.Errorf("commit_timeout range = %v, want line 15 column 27", r)
	}

	main := cfg.Storage("main")
	eq(t, "main type", main.Type, "filestorage")
	eq(t, "main path", main.Path, p("var/Data.fs"))
	eq(t, "main in_process", main.InProcess, true)
	eq(t, "main config", main.Config, Values{"path": p("var/Data.fs"), "sync": "group", "keep_old": true, "read_only": false})
	eq(t, "main decl line", main.DeclRange.Start.Line, 29)

	sess := cfg.Storage("sessions")
	eq(t, "sessions config", sess.Config, Values{"path": p("var/sessions"), "sync": false, "cache_size": int64(32 << 20), "bloom_bits": float64(12), "write_buffer": int64(1 << 20), "read_only": false})
	eq(t, "archive read_only", cfg.Storage("archive").ReadOnly, true)
	eq(t, "archive path", cfg.Storage("archive").Path, "/srv/archive/Data.fs")

	blobs := cfg.Storage("blobs")
	eq(t, "blobs plugin", blobs.Plugin, "custom")
	eq(t, "blobs config", blobs.Config, Values{"bucket": "zhost-blobs", "shards": float64(4), "read_only": false})

	eq(t, "partitions", len(cfg.Partitions), 4)
	eq(t, "archive partition", *cfg.Partition("archive"), Partition{Block: cfg.Partition("archive").Block, Storage: "archive", ReadOnly: true})

	cp := cfg.Plugin("custom")
	eq(t, "plugin path", cp.Path, p("bin/zhost-plugin-custom"))
	eq(t, "plugin sha", cp.SHA256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
	eq(t, "plugin args", cp.Args, []string{"-v"})
	eq(t, "plugin env", cp.Env, map[string]string{"GOMAXPROCS": "2"})
	eq(t, "plugin config", cp.Config, Values{"region": "eu"})
	eq(t, "default plugin path", cfg.Plugin("other").Path, "/opt/zhost/plugins/zhost-plugin-other")

	sd := cfg.Mount("session_data")
	eq(t, "mount plugin", sd.Plugin, "builtin")
	eq(t, "mount args", sd.Args, map[string]any{"partition": "sessiondata", "folder": "session_data"})
	eq(t, "mount partition", sd.Partition(), "sessiondata")
	ar := cfg.Mount("archive")
	eq(t, "archive mount plugin", ar.Plugin, "custom")
	eq(t, "archive mount plugin path", ar.PluginPath, p("bin/zhost-plugin-custom"))
	eq(t, "archive mount args", ar.Args, map[string]any{"partition": "archive", "depth": float64(2), "tags": []any{"a", "b"}, "opts": map[string]any{"x": true}})
	files := cfg.Mount("files")
	eq(t, "files plugin", files.Plugin, "")
	eq(t, "files plugin path", files.PluginPath, p("bin/zhost-plugin-files"))
	eq(t, "files args", files.Args, map[string]any{})

	se := cfg.Sessions
	eq(t, "sessions", *se, Sessions{
		DeclRange: se.DeclRange, AttrRanges: se.AttrRanges,
		Container: "/session_data/sessions", Mount: "session_data",
		Timeout: 30 * time.Minute, Lifetime: 12 * time.Hour,
		Cookie: "_app_sid", CookiePath: "/app", CookieDomain: "example.org",
		SameSite: SameSiteStrict, Secure: SecureAlways, Limit: 100000,
		Refresh: time.Minute, SweepInterval: 5 * time.Minute,
		OnAdd: "http://127.0.0.1:8081/hooks/added", OnDelete: "http://127.0.0.1:8081/hooks/deleted",
	})

	a1 := cfg.Client("app1")
	eq(t, "app1 server", a1.Server, "db1.internal:9100")
	eq(t, "app1 advertise", a1.Advertise, "10.0.0.11:8081")
	eq(t, "app1 cache", a1.CacheSize, int64(256<<20))
	eq(t, "app1 connect", a1.ConnectTimeout, 3*time.Second)
	eq(t, "app1 busy poll", a1.BusyPoll, 20*time.Microsecond)
	eq(t, "app1 log", a1.LogFile, p("log/app1.log"))
	eq(t, "app1 tls", *a1.TLS, ClientTLS{DeclRange: a1.TLS.DeclRange, CAFile: p("tls/ca.pem"), CertFile: p("tls/app1.pem"), KeyFile: p("tls/app1-key.pem"), ServerName: "zeo.internal"})
	a2 := cfg.Client("app2")
	eq(t, "app2 server", a2.Server, "10.0.0.10:9100")
	eq(t, "app2 advertise", a2.Advertise, "web1.internal:8082")
	eq(t, "app2 pid default", a2.PidFile, p("var/app2.pid"))
	eq(t, "app2 partition default", a2.Partition, "main")

	f := cfg.Balancers[0]
	eq(t, "front clients", f.Clients, []string{"app1", "app2"})
	eq(t, "front policy", f.Policy, PolicyLeastConn)
	eq(t, "front url", f.PublicURL, "https://www.example.org")
	eq(t, "front health", f.HealthCheck, HealthCheck{Path: "/status", Interval: 2 * time.Second, Timeout: time.Second, Rise: 1, Fall: 2})
	eq(t, "front max conns", f.MaxConnsPerClient, int64(64))
	eq(t, "front queue", f.QueueTimeout, 5*time.Second)
	eq(t, "front proxies", f.TrustedProxies, []string{"10.0.0.0/8", "192.168.1.5"})
	eq(t, "front access log", f.AccessLog, p("var/access.log"))
	eq(t, "front drain", f.DrainTimeout, 10*time.Second)

	var names []string
	for _, n := range cfg.Nodes() {
		names = append(names, string(n.Kind)+":"+n.Name)
	}
	eq(t, "nodes", names, []string{"server:zeo", "client:app1", "client:app2", "balancer:front"})
	eq(t, "node lookup", cfg.Node("app2").Listen, "0.0.0.0:8082")
	if cfg.Node("nope") != nil || cfg.Storage("nope") != nil || cfg.Partition("nope") != nil || cfg.Client("nope") != nil || cfg.Plugin("nope") != nil || cfg.Machine("nope") != nil || cfg.Mount("nope") != nil {
		t.Errorf("lookup of an unknown name returned a block")
	}
}

// TestDefaults checks the defaults documented in docs/config.md on the
// canonical example.
func TestDefaults(t *testing.T) {
	cfg := mustParseFile(t, "../examples/cluster.hcl", testOptions())
	dir := cfg.Dir
	s := cfg.Server
	eq(t, "commit timeout", s.CommitTimeout, 30*time.Second)
	eq(t, "txn timeout", s.TransactionTimeout, 5*time.Minute)
	eq(t, "inval log", s.InvalidationLogSize, int64(10000))
	eq(t, "max msg", s.MaxMessageSize, int64(64<<20))
	eq(t, "busy poll", s.BusyPoll, 50*time.Microsecond)
	eq(t, "server advertise", s.Advertise, "127.0.0.1:9100")
	eq(t, "server tls", s.TLS, (*ServerTLS)(nil))
	eq(t, "server pid", s.PidFile, filepath.Join(dir, "var/server.pid"))
	eq(t, "plugin dir", cfg.PluginDir, filepath.Join(dir, "plugins"))
	eq(t, "plugin hang timeout", cfg.PluginHangTimeout, time.Minute)

	eq(t, "packless defaults", cfg.Storage("sessions").Config, Values{
		"path": filepath.Join(dir, "var/sessions"), "sync": true, "cache_size": int64(8 << 20),
		"bloom_bits": float64(10), "write_buffer": int64(4 << 20), "read_only": false})
	eq(t, "filestorage defaults", cfg.Storage("main").Config, Values{
		"path": filepath.Join(dir, "var/Data.fs"), "sync": "group", "keep_old": false, "read_only": false})

	se := cfg.Sessions
	eq(t, "timeout", se.Timeout, 20*time.Minute)
	eq(t, "lifetime", se.Lifetime, time.Duration(0))
	eq(t, "cookie path", se.CookiePath, "/")
	eq(t, "same site", se.SameSite, SameSiteLax)
	eq(t, "secure", se.Secure, SecureAuto)
	eq(t, "refresh", se.Refresh, 30*time.Second)
	eq(t, "sweep", se.SweepInterval, time.Minute)
	eq(t, "mount", se.Mount, "session_data")

	c := cfg.Client("app1")
	eq(t, "client server", c.Server, "127.0.0.1:9100")
	eq(t, "cache", c.CacheSize, int64(64<<20))
	eq(t, "connect", c.ConnectTimeout, 10*time.Second)
	eq(t, "client busy poll", c.BusyPoll, 50*time.Microsecond)
	eq(t, "client pid", c.PidFile, filepath.Join(dir, "var/app1.pid"))
	eq(t, "client log", c.LogFile, "")
	eq(t, "partition", c.Partition, "main")

	b := cfg.Balancers[0]
	eq(t, "policy", b.Policy, PolicyRoundRobin)
	eq(t, "health", b.HealthCheck, HealthCheck{Path: "/_zhost/health", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3})
	eq(t, "queue", b.QueueTimeout, 30*time.Second)
	eq(t, "drain", b.DrainTimeout, 30*time.Second)
	eq(t, "proxies", b.TrustedProxies, []string{})
}

// TestShortTimeoutDefaults: the sweep interval defaults to the timeout
// when that is shorter than a minute, and refresh to half of it when that
// is shorter than 30s.
func TestShortTimeoutDefaults(t *testing.T) {
	src := strings.Replace(readFile(t, "../examples/cluster.hcl"), `timeout   = "20m"`, `timeout   = "20s"`, 1)
	cfg, diags := Parse([]byte(src), "../examples/cluster.hcl", testOptions())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eq(t, "sweep", cfg.Sessions.SweepInterval, 20*time.Second)
	eq(t, "refresh", cfg.Sessions.Refresh, 10*time.Second)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stripRanges zeroes every hcl2.Range in v, so configs parsed from the two
// syntaxes compare equal.
func stripRanges(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			stripRanges(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(hcl2.Range{}) {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Name == "AttrRanges" {
				v.Field(i).Set(reflect.Zero(v.Field(i).Type()))
				continue
			}
			stripRanges(v.Field(i))
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			stripRanges(v.Index(i))
		}
	}
}

// TestJSONTwin: examples/cluster.hcl.json decodes to the same config as
// examples/cluster.hcl.
func TestJSONTwin(t *testing.T) {
	a := mustParseFile(t, "../examples/cluster.hcl", testOptions())
	b := mustParseFile(t, "../examples/cluster.hcl.json", testOptions())
	a.Filename, b.Filename = "", ""
	stripRanges(reflect.ValueOf(a))
	stripRanges(reflect.ValueOf(b))
	if !reflect.DeepEqual(a, b) {
		t.Errorf("native and JSON configs differ:\n%#v\n%#v", a, b)
	}
}

// TestBaseDir: Options.BaseDir wins over the file's directory.
func TestBaseDir(t *testing.T) {
	cfg, diags := Parse([]byte(readFile(t, "../examples/cluster.hcl")), "cluster.hcl", Options{BaseDir: "/srv/zhost", StorageTypes: testOptions().StorageTypes})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eq(t, "path", cfg.Storage("main").Path, "/srv/zhost/var/Data.fs")
}

// TestLoad reads from disk, and reports an unreadable file as one error
// without a subject.
func TestLoad(t *testing.T) {
	cfg, diags := Load("../examples/multi-machine.hcl", testOptions())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eq(t, "advertise from machine", cfg.Client("app2").Advertise, "10.0.0.12:8081")
	eq(t, "server from machine", cfg.Client("app2").Server, "10.0.0.10:9100")

	cfg, diags = Load(filepath.Join(t.TempDir(), "missing.hcl"), testOptions())
	if cfg != nil || len(diags) != 1 || diags[0].Subject != nil || diags[0].Summary != "Cannot read config file" {
		t.Errorf("missing file: cfg %v diags %v", cfg, diags)
	}
}

// pluginOptions answers PluginSchemas like a plugin host would.
func pluginOptions() Options {
	opts := testOptions()
	opts.PluginSchemas = func(p *Plugin) (*PluginSchemas, error) {
		switch p.Name {
		case "custom":
			return &PluginSchemas{
				Config:  &Schema{Attributes: []Attribute{{Name: "region", Type: TypeString, Enum: []string{"eu", "us"}, Default: "eu"}}},
				Storage: &Schema{Attributes: []Attribute{{Name: "bucket", Type: TypeString, Required: true}, {Name: "shards", Type: TypeNumber, Default: float64(1), Min: "1", Max: "16"}}},
				MountFunctions: map[string]Schema{
					"mount_readonly": {Attributes: []Attribute{{Name: "partition", Type: TypeString, Required: true}, {Name: "depth", Type: TypeNumber}, {Name: "tags", Type: TypeStringList}, {Name: "opts", Type: TypeStringMap}}},
				},
			}, nil
		case "broken":
			return nil, errors.New("exec: no such file")
		}
		return nil, nil
	}
	return opts
}

// TestPluginSchemas: with a PluginSchemas hook, a plugin's settings, its
// storage blocks and its mount args are decoded with what it declares.
func TestPluginSchemas(t *testing.T) {
	base := `server "zeo" { listen = "127.0.0.1:9100" }
partition "main" { storage = storage.blobs }
client "app1" { listen = "127.0.0.1:8081" }
plugin "custom" {
  path   = "bin/custom"
  %s
}
storage "blobs" {
  type = "custom"
  %s
}
mount "m" {
  plugin   = plugin.custom
  function = %q
  path     = "/m"
  args     = { partition = "main", %s }
}
`
	cases := []struct {
		name                     string
		plugin, storage, fn, arg string
		want                     string // "" for valid, else "line:col summary"
	}{
		{"valid", `region = "us"`, `bucket = "b"`, "mount_readonly", `depth = 2`, ""},
		{"bad plugin setting", `region = "mars"`, `bucket = "b"`, "mount_readonly", `depth = 2`, "6:12 Unsupported value"},
		{"unknown plugin setting", `regio = "eu"`, `bucket = "b"`, "mount_readonly", `depth = 2`, "6:3 Unsupported argument"},
		{"storage missing setting", ``, ``, "mount_readonly", `depth = 2`, "8:1 Missing required argument"},
		{"storage out of range", ``, `bucket = "b"
  shards = 17`, "mount_readonly", `depth = 2`, "11:12 Value out of range"},
		{"unknown function", ``, `bucket = "b"`, "mount_rw", `depth = 2`, "14:14 Unknown mount function"},
		{"bad arg type", ``, `bucket = "b"`, "mount_readonly", `depth = "deep"`, "16:44 Incorrect attribute value type"},
		{"unknown arg", ``, `bucket = "b"`, "mount_readonly", `dept = 1`, "16:36 Unsupported argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := []byte(fmt.Sprintf(base, c.plugin, c.storage, c.fn, c.arg))
			cfg, diags := Parse(src, "p.hcl", pluginOptions())
			if c.want == "" {
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				eq(t, "plugin config", cfg.Plugin("custom").Config, Values{"region": "us"})
				eq(t, "storage config", cfg.Storage("blobs").Config, Values{"bucket": "b", "shards": float64(1), "read_only": false})
				eq(t, "mount args", cfg.Mount("m").Args, map[string]any{"partition": "main", "depth": float64(2)})
				return
			}
			got := wantStrings(gotWants(diags))
			eq(t, "diagnostics", got, []string{"error " + c.want})
		})
	}

	// A plugin that provides no storage, and one whose schema cannot be had.
	src := `server "zeo" { listen = "127.0.0.1:9100" }
partition "main" { storage = storage.s }
client "app1" { listen = "127.0.0.1:8081" }
plugin "plain" {}
plugin "broken" {}
storage "s" { type = "plain" }
`
	_, diags := Parse([]byte(src), "p.hcl", pluginOptions())
	eq(t, "diagnostics", wantStrings(gotWants(diags)), []string{"error 5:1 Cannot load plugin schema", "error 6:22 Plugin provides no storage"})
}

// TestParserReuse: a Parser parses the same file name again from scratch
// and keeps the latest source for snippets.
func TestParserReuse(t *testing.T) {
	p := NewParser(testOptions())
	if _, diags := p.Parse([]byte(`client "a" {`), "c.hcl"); !diags.HasErrors() {
		t.Fatal("broken source parsed")
	}
	good := []byte(`client "a" {
  listen = "127.0.0.1:1"
  server = "h:1"
}
`)
	cfg, diags := p.Parse(good, "c.hcl")
	if diags.HasErrors() || cfg == nil {
		t.Fatalf("second parse: %v", diags)
	}
	if string(p.Files()["c.hcl"].Bytes) != string(good) {
		t.Errorf("Files keeps the old source")
	}
}
