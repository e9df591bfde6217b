package pluginhost

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestStderrWithBadLogFields: a plugin that writes JSON lines whose
// hclog fields are not strings on stderr (here before its handshake, then
// it exits) must not bring the host down (go-plugin's log parser asserts
// those fields are strings); the lines are logged as text, lines after
// them are still parsed at their level, and the start fails with the usual
// error.
func TestStderrWithBadLogFields(t *testing.T) {
	t.Parallel()
	m, logs := newManager(t, Options{})
	bin := script(t, "zhost-plugin-badlog", `
echo '{"@message": 5, "@level": ["x"], "@timestamp": 7, "who": "number-message"}' >&2
echo '{"@message": {"nested": true}, "@level": null}' >&2
echo ' {"@message": 6, "who": "leading-space"}' >&2
echo '{"@level": "error", "@message": "a well-formed line after the bad ones"}' >&2
exit 3`)
	if err := m.Add(Spec{Name: "badlog", Path: bin, Where: "cluster.hcl:60"}); err != nil {
		t.Fatal(err)
	}
	_, err := m.Describe(testCtx(t), "badlog")
	wantStartError(t, err, ErrHandshake, "badlog", "cluster.hcl:60", "exited")
	waitFor(t, 5*time.Second, "the plugin's stderr in the host log", func() bool {
		return strings.Contains(logs.String(), "a well-formed line after the bad ones")
	})
	out := logs.String()
	for _, want := range []string{"number-message", `nested`, "leading-space", "[ERROR] host.badlog: a well-formed line after the bad ones"} {
		if !strings.Contains(out, want) {
			t.Errorf("host log lacks %q:\n%s", want, out)
		}
	}
}

func TestSafeLogLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text\n", "plain text\n"},
		{"{not json\n", "{not json\n"},
		{`{"@message":"fine","@level":"info"}` + "\n", `{"@message":"fine","@level":"info"}` + "\n"},
		{`{"@message":5}` + "\n", `{"@message":"5"}` + "\n"},
		{`{"@level":["x"],"k":1}` + "\r\n", `{"@level":"[\"x\"]","k":1}` + "\r\n"},
		{`{"@timestamp":null}`, `{"@timestamp":"null"}`},
		{`{"@message":"a","@message":5}` + "\n", `{"@message":"5"}` + "\n"},
		{"", ""},
	} {
		if got := string(safeLogLine([]byte(tc.in))); got != tc.want {
			t.Errorf("safeLogLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// Whatever comes out, go-plugin's parser must find strings.
		body := strings.TrimSpace(string(safeLogLine([]byte(tc.in))))
		var obj map[string]any
		if json.Unmarshal([]byte(body), &obj) == nil {
			for _, k := range hclogKeys {
				if v, ok := obj[k]; ok {
					if _, isString := v.(string); !isString {
						t.Errorf("%q: %s is %T after the filter", tc.in, k, v)
					}
				}
			}
		}
	}
}

// TestLogLineFilterStream: the filter passes a stream through byte for
// byte except the lines it rewrites, whatever the read sizes, including
// a line longer than it inspects (passed untouched) and a last line
// without a newline.
func TestLogLineFilterStream(t *testing.T) {
	long := `{"@message":5,"pad":"` + strings.Repeat("x", maxLogLine+100) + `"}` + "\n"
	in := "text\n" + `{"@message":5}` + "\n" + long + `{"@level":1}` + "\n" + "last line without newline"
	want := "text\n" + `{"@message":"5"}` + "\n" + long + `{"@level":"1"}` + "\n" + "last line without newline"
	for _, wrap := range []struct {
		name string
		r    func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte at a time", iotest.OneByteReader},
		{"half reads", iotest.HalfReader},
	} {
		t.Run(wrap.name, func(t *testing.T) {
			src := io.NopCloser(wrap.r(strings.NewReader(in)))
			f := &logLineFilter{r: newLogReader(src), c: src}
			got, err := io.ReadAll(iotest.OneByteReader(f))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, []byte(want)) {
				t.Fatalf("filtered stream differs: got %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

// TestLogLineFilterAsGoPluginReads reads the filter's output as go-plugin
// does (bufio ReadLine with its 64 KiB buffer, then json.Unmarshal of every
// whole line) and checks that every hclog field it would assert is a string
// is one: JSON allows whitespace before the object, so a line such as
// ` {"@message": 5}` or "\t{...}" parses there too.
func TestLogLineFilterAsGoPluginReads(t *testing.T) {
	lines := []string{
		` {"@message": 5}`,
		"\t{\"@level\": 1}",
		"\r{\"@timestamp\": 2}",
		"  \t {\"@message\": {\"a\": 1}, \"@level\": \"info\"}",
		`{"@message": 5}` + "\r\r",
		`{"@message": "fine"}`,
		" plain text",
	}
	if n := readAsGoPlugin(t, strings.Join(lines, "\n")+"\n"); n != len(lines) {
		t.Fatalf("go-plugin read %d lines, want %d", n, len(lines))
	}
}

// FuzzLogLineFilter: whatever a plugin writes on stderr, go-plugin's
// parser finds strings in the hclog fields after the filter.
func FuzzLogLineFilter(f *testing.F) {
	for _, s := range []string{
		` {"@message": 5}` + "\n",
		"{\"@level\": 1}\r\n{\"@message\":\"x\"}",
		"text\n\t{\"@timestamp\": [1]}\r\r\n",
		`{"@message":"a","@message":5}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { readAsGoPlugin(t, in) })
}

// readAsGoPlugin reads in through the filter as go-plugin's logStderr
// does and reports any hclog field that is not a string; it returns the
// number of lines read.
func readAsGoPlugin(t *testing.T, in string) int {
	t.Helper()
	src := io.NopCloser(strings.NewReader(in))
	f := &logLineFilter{r: newLogReader(src), c: src}
	r := bufio.NewReaderSize(f, 64<<10) // go-plugin's PluginLogBufferSize default
	n := 0
	for {
		line, isPrefix, err := r.ReadLine()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if isPrefix {
			continue
		}
		var raw map[string]any
		if json.Unmarshal(line, &raw) != nil {
			continue // go-plugin logs it as text
		}
		for _, k := range hclogKeys {
			if v, ok := raw[k]; ok {
				if _, isString := v.(string); !isString {
					t.Errorf("line %q: go-plugin would find %s = %T and panic the host", line, k, v)
				}
			}
		}
	}
	return n
}
