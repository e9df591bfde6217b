package forwarded

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse([]string{
		`for=192.0.2.60;proto=http;by=203.0.113.43`,
		`For="[2001:db8:cafe::17]:4711" , for=unknown;host="example.com:8080";proto=HTTPS`,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Element{
		{For: "192.0.2.60", Proto: "http", By: "203.0.113.43"},
		{For: "[2001:db8:cafe::17]:4711"},
		{For: "unknown", Host: "example.com:8080", Proto: "https"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{`for`, `for=`, `for="x`, `for=a b`, `;`, `host="a/b"`, `for=a;;`, "for=\"a\x01\""} {
		if _, err := Parse([]string{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

func TestElementRoundTrip(t *testing.T) {
	for _, e := range []Element{
		{For: "192.0.2.1", Host: "example.org", Proto: "https"},
		{For: Node(netip.MustParseAddr("2001:db8::1")), Host: "127.0.0.1:8080", Proto: "http"},
		{For: "_hidden", By: "_front", Host: `we"ird`},
	} {
		s := e.String()
		got, err := Parse([]string{s})
		if e.Host == `we"ird` {
			if err == nil {
				t.Fatalf("Parse(%q) accepted a host with a quote", s)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != e {
			t.Fatalf("round trip of %+v via %q: %+v %v", e, s, got, err)
		}
	}
	if got := (Element{For: "[2001:db8::1]", Host: "a:1"}).String(); got != `for="[2001:db8::1]";host="a:1"` {
		t.Fatalf("quoting: %s", got)
	}
}

func TestParseTrust(t *testing.T) {
	tr, err := ParseTrust([]string{"10.0.0.0/8", " 127.0.0.1 ", "::1", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "127.0.0.1": true, "127.0.0.2": false, "::1": true,
		"fd12::1": true, "::ffff:10.9.9.9": true, "192.0.2.1": false,
	} {
		if got := tr.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v", addr, got)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "host.example", ""} {
		if _, err := ParseTrust([]string{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseTrust(%q): %v", bad, err)
		}
	}
	var none *Trust
	if none.Contains(netip.MustParseAddr("127.0.0.1")) || !none.Empty() {
		t.Fatal("nil Trust trusts someone")
	}
}

func TestResolve(t *testing.T) {
	tr, _ := ParseTrust([]string{"10.0.0.0/8"})
	req := func(remote string, hdr map[string]string) *http.Request {
		r := httptest.NewRequest("GET", "http://node1:8081/x", nil)
		r.RemoteAddr = remote
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	for name, tc := range map[string]struct {
		r    *http.Request
		want Origin
	}{
		"direct": {req("192.0.2.9:5555", nil), Origin{Proto: "http", Host: "node1:8081", For: "192.0.2.9"}},
		"untrusted peer ignored": {req("192.0.2.9:5555", map[string]string{
			"Forwarded": "for=1.2.3.4;host=evil;proto=https", "X-Forwarded-Host": "evil",
		}), Origin{Proto: "http", Host: "node1:8081", For: "192.0.2.9"}},
		"one trusted hop": {req("10.0.0.5:1", map[string]string{
			"Forwarded": `for=192.0.2.9;host="pub.example:8443";proto=https`,
		}), Origin{Proto: "https", Host: "pub.example:8443", For: "192.0.2.9", FromHeaders: true}},
		"chain stops at first untrusted hop": {req("10.0.0.5:1", map[string]string{
			// The browser (192.0.2.9) forged the first element; the trusted
			// proxy 10.0.0.6 saw it and the balancer 10.0.0.5 saw 10.0.0.6.
			"Forwarded": `for=6.6.6.6;host=evil;proto=http, for=192.0.2.9;host=pub.example;proto=https, for=10.0.0.6;host=inner;proto=http`,
		}), Origin{Proto: "https", Host: "pub.example", For: "192.0.2.9", FromHeaders: true}},
		"x-forwarded": {req("10.0.0.5:1", map[string]string{
			"X-Forwarded-For": "6.6.6.6, 192.0.2.9, 10.0.0.6", "X-Forwarded-Host": "pub.example", "X-Forwarded-Proto": "https",
		}), Origin{Proto: "https", Host: "pub.example", For: "192.0.2.9", FromHeaders: true}},
		"bad x-forwarded-host ignored": {req("10.0.0.5:1", map[string]string{
			"X-Forwarded-Host": "evil/path", "X-Forwarded-Proto": "gopher",
		}), Origin{Proto: "http", Host: "node1:8081", For: "10.0.0.5"}},
		"malformed forwarded falls back": {req("10.0.0.5:1", map[string]string{
			"Forwarded": "for=", "X-Forwarded-Proto": "https",
		}), Origin{Proto: "https", Host: "node1:8081", For: "10.0.0.5", FromHeaders: true}},
	} {
		if got := tr.Resolve(tc.r); got != tc.want {
			t.Errorf("%s: got %+v want %+v", name, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`for=192.0.2.60;proto=http`, `for="[::1]:80", by=x`, `host="a\"b"`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		elems, err := Parse([]string{s})
		if err != nil {
			return
		}
		// What parses renders to something that parses to the same.
		var vals []string
		for _, e := range elems {
			vals = append(vals, e.String())
		}
		again, err := Parse(vals)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", vals, err)
		}
		for i := range elems {
			if i < len(again) && elems[i] != again[i] && elems[i].String() != "" {
				t.Fatalf("round trip %q: %+v != %+v", s, elems[i], again[i])
			}
		}
	})
}
