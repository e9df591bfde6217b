package hcl

import (
	"encoding/json"
	"strings"
	"testing"
)

const jsonBase = `{
  "server": { "zeo": { "listen": "127.0.0.1:9100" } },
  "storage": { "main": { "type": "filestorage", "path": "var/Data.fs" } },
  "partition": { "main": { "storage": %s } },
  "client": { "app1": { "listen": "127.0.0.1:8081" } }%s
}`

// TestJSONSyntaxErrors: mistakes in JSON syntax are reported at their
// line and column like in native syntax.
func TestJSONSyntaxErrors(t *testing.T) {
	cases := []struct {
		name, storage, extra string
		want                 []string
	}{
		{"undeclared reference", `"storage.mian"`, ``, []string{"error 4:39 Reference to undeclared storage"}},
		{"bare name", `"main"`, ``, []string{"error 4:39 Invalid reference"}},
		{"number for reference", `5`, ``, []string{"error 4:39 Invalid reference"}},
		{"unknown block", `"storage.main"`, `, "servr": {}`, []string{"error 5:57 Extraneous JSON object property"}},
		{"balancer without clients", `"storage.main"`, `, "balancer": { "front": { "listen": "127.0.0.1:8080", "public_url": "http://x", "clients": [] } }`,
			[]string{"error 5:147 Balancer without clients"}},
		{"bad args", `"storage.main"`, `, "mount": { "m": { "function": "mount_partition", "path": "/m", "args": { "partition": "nope" } } }`,
			[]string{"error 5:143 Unknown partition"}},
		{"port clash", `"storage.main"`, `, "balancer": { "front": { "listen": "127.0.0.1:8081", "public_url": "http://x", "clients": ["client.app1"] } }`,
			[]string{"error 5:92 Port clash"}},
		{"syntax", `"storage.main"`, `,`, []string{"error 1:1 Root value must be object", "error 5:55 Trailing comma in object"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(strings.Replace(jsonBase, "%s", c.storage, 1), "%s", c.extra, 1)
			cfg, diags := Parse([]byte(src), "cluster.hcl.json", testOptions())
			if cfg != nil {
				t.Errorf("config returned with errors")
			}
			eq(t, "diagnostics", wantStrings(gotWants(diags)), c.want)
		})
	}
}

// TestReport checks the JSON shape and the snippet of every diagnostic of
// the invalid corpus: the highlighted text is the subject's bytes.
func TestReport(t *testing.T) {
	p := NewParser(testOptions())
	src := []byte("server \"zeo\" { listen = \"127.0.0.1:9100\" }\nclient \"app1\" {\n  listen = \"nowhere\"\n}\n")
	_, diags := p.Parse(src, "r.hcl")
	rep := NewReport(diags, p.Files())
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"valid":false,"error_count":1,"warning_count":1,"diagnostics":[` +
		`{"severity":"warning","summary":"Server without partitions","detail":"server \"zeo\" serves no partition; clients will have nothing to open.","range":{"filename":"r.hcl","start":{"line":1,"column":1,"byte":0},"end":{"line":1,"column":13,"byte":12}},"snippet":{"context":"server \"zeo\"","code":"server \"zeo\" { listen = \"127.0.0.1:9100\" }","start_line":1,"highlight_start_offset":0,"highlight_end_offset":12}},` +
		`{"severity":"error","summary":"Invalid address","detail":"The listen argument: \"nowhere\" has no port (write host:port, e.g. \"127.0.0.1:9100\").","range":{"filename":"r.hcl","start":{"line":3,"column":12,"byte":70},"end":{"line":3,"column":21,"byte":79}},"snippet":{"context":"client \"app1\"","code":"  listen = \"nowhere\"","start_line":3,"highlight_start_offset":11,"highlight_end_offset":20}}]}`
	if string(b) != want {
		t.Errorf("report:\n%s\nwant:\n%s", b, want)
	}

	// No diagnostics: an empty array, not null.
	b, _ = json.Marshal(NewReport(nil, nil))
	eq(t, "empty report", string(b), `{"valid":true,"error_count":0,"warning_count":0,"diagnostics":[]}`)
}
