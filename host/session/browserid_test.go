package session

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNewIDIsLongRandomAndValid(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != IDLength || IDLength*6 < 128 {
			t.Fatalf("id %q: length %d, want %d (>= 128 bits)", id, len(id), IDLength)
		}
		if !ValidID(id) {
			t.Fatalf("NewID gave an id ValidID rejects: %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q after %d ids", id, i)
		}
		seen[id] = true
	}
}

func TestValidIDRejectsMalformed(t *testing.T) {
	good, err := NewID()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"", "abc", good[:IDLength-1], good + "A",
		strings.Repeat("=", IDLength), good[:IDLength-1] + "/", good[:IDLength-1] + "+",
		good[:10] + " " + good[11:], good[:10] + "\x00" + good[11:], good[:10] + "é"[:1] + good[11:],
	} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestKeyIsStableAndHidesID(t *testing.T) {
	id, _ := NewID()
	k := Key(id)
	if k != Key(id) || len(k) != 32 || strings.Contains(k, id) {
		t.Fatalf("Key(%q) = %q", id, k)
	}
	id2, _ := NewID()
	if Key(id2) == k {
		t.Fatal("two ids share a key")
	}
}

func mustIDs(t *testing.T, o Options) *BrowserIDs {
	t.Helper()
	o, err := o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBrowserIDs(&o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSetCookieAttributes(t *testing.T) {
	b := mustIDs(t, Options{CookieName: "sid", CookiePath: "/app", CookieDomain: "example.org"})
	id, _ := NewID()
	r := httptest.NewRequest("GET", "http://example.org/app/x", nil)
	w := httptest.NewRecorder()
	w.Header().Set("Vary", "Accept-Encoding")
	b.SetCookie(w, r, id)
	res := w.Result()
	cs := res.Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies: %v", cs)
	}
	c := cs[0]
	if c.Name != "sid" || c.Value != id || c.Path != "/app" || c.Domain != "example.org" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure {
		t.Fatalf("cookie %+v", c)
	}
	vary := strings.Join(res.Header.Values("Vary"), ",")
	if !strings.Contains(vary, "Cookie") || !strings.Contains(vary, "Accept-Encoding") {
		t.Fatalf("Vary = %q", vary)
	}
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") || !strings.Contains(cc, "private") {
		t.Fatalf("Cache-Control = %q", cc)
	}
	// Setting twice does not repeat Vary: Cookie.
	b.SetCookie(w, r, id)
	if n := strings.Count(strings.Join(w.Result().Header.Values("Vary"), ","), "Cookie"); n != 1 {
		t.Fatalf("Vary lists Cookie %d times", n)
	}
}

func TestExpireCookie(t *testing.T) {
	b := mustIDs(t, Options{})
	w := httptest.NewRecorder()
	b.ExpireCookie(w, httptest.NewRequest("GET", "/", nil))
	cs := w.Result().Cookies()
	if len(cs) != 1 || cs[0].MaxAge >= 0 || cs[0].Name != DefaultCookieName {
		t.Fatalf("cookies %+v", cs)
	}
}

func TestFromRequest(t *testing.T) {
	b := mustIDs(t, Options{})
	id, _ := NewID()
	for _, tc := range []struct {
		cookie string
		want   string
		ok     bool
	}{
		{"", "", false},
		{DefaultCookieName + "=garbage", "", false},
		{DefaultCookieName + "=" + id, id, true},
		{DefaultCookieName + "=bad; " + DefaultCookieName + "=" + id, id, true},
		{"other=" + id, "", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.cookie != "" {
			r.Header.Set("Cookie", tc.cookie)
		}
		got, ok := b.FromRequest(r)
		if got != tc.want || ok != tc.ok {
			t.Errorf("cookie %q: got (%q, %v), want (%q, %v)", tc.cookie, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSecureDecision(t *testing.T) {
	plain := func() *http.Request {
		r := httptest.NewRequest("GET", "http://app/", nil)
		r.RemoteAddr = "10.1.2.3:5555"
		return r
	}
	withTLS := plain()
	withTLS.TLS = &tls.ConnectionState{}
	xfp := plain()
	xfp.Header.Set("X-Forwarded-Proto", "https")
	fwd := plain()
	fwd.Header.Set("Forwarded", `for=1.2.3.4;proto="https"`)
	fwdHTTP := plain()
	fwdHTTP.Header.Set("Forwarded", "for=1.2.3.4;proto=http")
	// Two proxies: the browser reached the outer one over http, the outer
	// one (10.9.9.9, trusted) reached the inner one over https. The
	// browser's scheme is what counts, as it is for the app's URLs.
	fwdChain := plain()
	fwdChain.Header.Set("Forwarded", `for=1.2.3.4;proto=http, for=10.9.9.9;proto=https`)
	fwdChainHTTPS := plain()
	fwdChainHTTPS.Header.Set("Forwarded", `for=1.2.3.4;proto=https, for=10.9.9.9;proto=http`)
	// A comma inside a quoted value is not an element separator: the
	// element says http (regression: a split on every comma read the tail
	// of the quoted "by" as a second element saying https).
	fwdQuoted := plain()
	fwdQuoted.Header.Set("Forwarded", `for=1.2.3.4;proto=http;by="_x,proto=https"`)
	fwdMalformed := plain()
	fwdMalformed.Header.Set("Forwarded", `for=1.2.3.4;proto=https;junk`)
	untrusted := plain()
	untrusted.RemoteAddr = "192.0.2.7:4444"
	untrusted.Header.Set("X-Forwarded-Proto", "https")
	v6 := plain()
	v6.RemoteAddr = "[::ffff:10.1.2.3]:80"
	v6.Header.Set("X-Forwarded-Proto", "https")

	for _, tc := range []struct {
		name string
		o    Options
		r    *http.Request
		want bool
	}{
		{"auto plain", Options{}, plain(), false},
		{"auto tls", Options{}, withTLS, true},
		{"public https", Options{PublicURL: "https://shop.example"}, plain(), true},
		{"public http", Options{PublicURL: "http://127.0.0.1:8080"}, plain(), false},
		{"xfp untrusted config", Options{}, xfp, false},
		{"xfp trusted", Options{TrustedProxies: []string{"10.0.0.0/8"}}, xfp, true},
		{"xfp trusted single", Options{TrustedProxies: []string{"10.1.2.3"}}, xfp, true},
		{"xfp from untrusted peer", Options{TrustedProxies: []string{"10.0.0.0/8"}}, untrusted, false},
		{"forwarded trusted", Options{TrustedProxies: []string{"10.0.0.0/8"}}, fwd, true},
		{"forwarded http", Options{TrustedProxies: []string{"10.0.0.0/8"}}, fwdHTTP, false},
		{"forwarded chain, browser on http", Options{TrustedProxies: []string{"10.0.0.0/8"}}, fwdChain, false},
		{"forwarded chain, browser on https", Options{TrustedProxies: []string{"10.0.0.0/8"}}, fwdChainHTTPS, true},
		{"forwarded chain, outer hop untrusted", Options{TrustedProxies: []string{"10.1.2.3"}}, fwdChainHTTPS, false},
		{"forwarded quoted comma", Options{TrustedProxies: []string{"10.0.0.0/8"}}, fwdQuoted, false},
		{"forwarded malformed", Options{TrustedProxies: []string{"10.0.0.0/8"}}, fwdMalformed, false},
		{"mapped v6 peer", Options{TrustedProxies: []string{"10.0.0.0/8"}}, v6, true},
		{"always", Options{Secure: SecureAlways}, plain(), true},
		{"never", Options{Secure: SecureNever, PublicURL: "https://x"}, withTLS, false},
	} {
		b := mustIDs(t, tc.o)
		if got := b.Secure(tc.r); got != tc.want {
			t.Errorf("%s: Secure = %v, want %v", tc.name, got, tc.want)
		}
		w := httptest.NewRecorder()
		b.SetCookie(w, tc.r, "x")
		if c := w.Result().Cookies()[0]; c.Secure != tc.want {
			t.Errorf("%s: cookie Secure = %v", tc.name, c.Secure)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{Container: "relative/path"},
		{Container: "/"},
		{Timeout: -1},
		{Timeout: time.Minute, Refresh: time.Minute},
		{Limit: -3},
		{CookieName: "bad name"},
		{CookiePath: "nope"},
		{NotifyURL: "ftp://x"},
		{Secure: SecureMode(9)},
	} {
		if _, err := o.withDefaults(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: err %v, want ErrInvalidOptions", o, err)
		}
	}
	for _, o := range []Options{
		{PublicURL: "not a url"},
		{TrustedProxies: []string{"10.0.0.0/33"}},
		{TrustedProxies: []string{"host.example"}},
		{SameSite: http.SameSiteNoneMode, Secure: SecureNever},
	} {
		o2, err := o.withDefaults()
		if err == nil {
			_, err = newBrowserIDs(&o2)
		}
		if !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: err %v, want ErrInvalidOptions", o, err)
		}
	}
	o, err := Options{Timeout: 10 * time.Second}.withDefaults()
	if err != nil || o.Refresh >= o.Timeout || o.SameSite != http.SameSiteLaxMode || o.CookieName != DefaultCookieName {
		t.Fatalf("defaults: %+v %v", o, err)
	}
}

func TestParseModes(t *testing.T) {
	for s, want := range map[string]SecureMode{"": SecureAuto, "auto": SecureAuto, "Always": SecureAlways, "never": SecureNever} {
		if got, err := ParseSecureMode(s); err != nil || got != want {
			t.Errorf("ParseSecureMode(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseSecureMode("sometimes"); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("ParseSecureMode(sometimes): %v", err)
	}
	for s, want := range map[string]http.SameSite{"": http.SameSiteLaxMode, "strict": http.SameSiteStrictMode, "None": http.SameSiteNoneMode} {
		if got, err := ParseSameSite(s); err != nil || got != want {
			t.Errorf("ParseSameSite(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseSameSite("loose"); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("ParseSameSite(loose): %v", err)
	}
}
