package forwarded

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Header names this package reads and writes.
const (
	HeaderForwarded       = "Forwarded"
	HeaderXForwardedFor   = "X-Forwarded-For"
	HeaderXForwardedHost  = "X-Forwarded-Host"
	HeaderXForwardedProto = "X-Forwarded-Proto"
)

// ProxyHeaders lists every header through which a proxy describes the
// client. A front end strips all of them from requests of clients it does
// not trust, so that a browser cannot forge its address or the public URL.
var ProxyHeaders = []string{
	HeaderForwarded,
	HeaderXForwardedFor,
	HeaderXForwardedHost,
	HeaderXForwardedProto,
	"X-Forwarded-Port",
	"X-Forwarded-Prefix",
	"X-Forwarded-Server",
	"X-Real-Ip",
}

// ErrInvalid reports a malformed trusted-proxy entry or Forwarded header.
var ErrInvalid = errors.New("invalid forwarded value")

// Trust is a set of address ranges whose forwarding headers are believed.
// The zero value and nil trust nobody. A Trust is immutable and safe for
// concurrent use.
type Trust struct {
	prefixes []netip.Prefix
}

// ParseTrust parses CIDRs ("10.0.0.0/8", "::1/128") and bare addresses
// ("127.0.0.1", an address is its own /32 or /128). An empty list trusts
// nobody. The error names the first bad entry and wraps ErrInvalid.
func ParseTrust(entries []string) (*Trust, error) {
	t := &Trust{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w: %v", e, ErrInvalid, err)
			}
			t.prefixes = append(t.prefixes, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w: %v", e, ErrInvalid, err)
		}
		a = a.Unmap()
		t.prefixes = append(t.prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, nil
}

// Contains reports whether addr lies in a trusted range. IPv4-mapped IPv6
// addresses are compared as IPv4.
func (t *Trust) Contains(addr netip.Addr) bool {
	if t == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Empty reports whether the set trusts nobody.
func (t *Trust) Empty() bool { return t == nil || len(t.prefixes) == 0 }

// RemoteAddr parses a net/http Request.RemoteAddr ("ip:port", "[v6]:port"
// or a bare address) into an address; the zero Addr if it is neither.
func RemoteAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(strings.Trim(remote, "[]")); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// Origin is what the client at the far end of the proxy chain used: the
// scheme ("http" or "https") and the Host it asked for, and its address.
type Origin struct {
	Proto string
	Host  string
	// For is the client's address as the nearest trusted proxy saw it (an
	// IP, or an obfuscated identifier such as "unknown"); empty when the
	// request came straight from the client and RemoteAddr is not an IP.
	For string
	// FromHeaders is true when Proto and Host came from trusted
	// forwarding headers rather than from the connection itself.
	FromHeaders bool
}

// BaseURL returns "proto://host", the prefix of every absolute URL an
// application emits for this client.
func (o Origin) BaseURL() string { return o.Proto + "://" + o.Host }

// Resolve returns the origin of r. Headers are believed only when
// r.RemoteAddr is trusted, and then only as far as the chain of trusted
// hops reaches: the Forwarded header (RFC 7239) is walked from the nearest
// element leftwards while the element's "for" is itself trusted, and the
// element where the walk stops gives host and proto. Without a Forwarded
// header, X-Forwarded-For is walked the same way and the last
// X-Forwarded-Host and X-Forwarded-Proto values (those the nearest proxy
// set) give host and proto. A malformed Forwarded header is ignored (the
// X-Forwarded-* headers or the connection are used instead). Safe for
// concurrent use; never fails.
func (t *Trust) Resolve(r *http.Request) Origin {
	o := Origin{Proto: "http", Host: r.Host}
	if r.TLS != nil {
		o.Proto = "https"
	}
	peer := RemoteAddr(r.RemoteAddr)
	if peer.IsValid() {
		o.For = peer.String()
	}
	if !t.Contains(peer) {
		return o
	}
	if vals := r.Header.Values(HeaderForwarded); len(vals) > 0 {
		if elems, err := Parse(vals); err == nil && len(elems) > 0 {
			i := len(elems) - 1
			for i > 0 && t.Contains(nodeAddr(elems[i].For)) {
				i--
			}
			e := elems[i]
			if e.For != "" {
				o.For = e.For
			}
			if e.Host != "" {
				o.Host = e.Host
				o.FromHeaders = true
			}
			if p := strings.ToLower(e.Proto); p == "http" || p == "https" {
				o.Proto = p
				o.FromHeaders = true
			}
			return o
		}
	}
	if xff := splitList(r.Header.Values(HeaderXForwardedFor)); len(xff) > 0 {
		i := len(xff) - 1
		for i > 0 && t.Contains(nodeAddr(xff[i])) {
			i--
		}
		o.For = xff[i]
	}
	if hs := splitList(r.Header.Values(HeaderXForwardedHost)); len(hs) > 0 && validHost(hs[len(hs)-1]) {
		o.Host = hs[len(hs)-1]
		o.FromHeaders = true
	}
	if ps := splitList(r.Header.Values(HeaderXForwardedProto)); len(ps) > 0 {
		if p := strings.ToLower(ps[len(ps)-1]); p == "http" || p == "https" {
			o.Proto = p
			o.FromHeaders = true
		}
	}
	return o
}

// Element is one hop of a Forwarded header: by, for, host and proto as
// RFC 7239 section 5 defines them. Empty fields are absent.
type Element struct {
	By, For, Host, Proto string
}

// String renders the element as a Forwarded header element, quoting
// values that are not tokens (IPv6 nodes, host:port).
func (e Element) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(quoteIfNeeded(v))
	}
	add("for", e.For)
	add("by", e.By)
	add("host", e.Host)
	add("proto", e.Proto)
	return b.String()
}

// Node renders an address as a Forwarded node: IPv4 as is, IPv6 in
// brackets ("[2001:db8::1]"), as RFC 7239 section 6 requires.
func Node(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap()
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// Parse parses the values of Forwarded headers (several header lines are
// one comma-separated list) into elements, leftmost (nearest the client)
// first. It wraps ErrInvalid on a syntax error.
func Parse(values []string) ([]Element, error) {
	var out []Element
	for _, v := range values {
		p := parser{s: v}
		for {
			p.skipSpace()
			if p.eof() {
				break
			}
			e, err := p.element()
			if err != nil {
				return nil, err
			}
			out = append(out, e)
			p.skipSpace()
			if p.eof() {
				break
			}
			if p.s[p.i] != ',' {
				return nil, fmt.Errorf("forwarded: %w: expected ',' at %d", ErrInvalid, p.i)
			}
			p.i++
		}
	}
	return out, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

func (p *parser) skipSpace() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) element() (Element, error) {
	var e Element
	for {
		p.skipSpace()
		start := p.i
		for !p.eof() && isTokenChar(p.s[p.i]) {
			p.i++
		}
		key := strings.ToLower(p.s[start:p.i])
		if key == "" || p.eof() || p.s[p.i] != '=' {
			return e, fmt.Errorf("forwarded: %w: expected name=value at %d", ErrInvalid, start)
		}
		p.i++
		val, err := p.value()
		if err != nil {
			return e, err
		}
		switch key {
		case "for":
			e.For = val
		case "by":
			e.By = val
		case "host":
			if !validHost(val) {
				return e, fmt.Errorf("forwarded: %w: bad host %q", ErrInvalid, val)
			}
			e.Host = val
		case "proto":
			e.Proto = strings.ToLower(val)
		}
		p.skipSpace()
		if p.eof() || p.s[p.i] == ',' {
			return e, nil
		}
		if p.s[p.i] != ';' {
			return e, fmt.Errorf("forwarded: %w: expected ';' at %d", ErrInvalid, p.i)
		}
		p.i++
	}
}

func (p *parser) value() (string, error) {
	if p.eof() {
		return "", fmt.Errorf("forwarded: %w: missing value", ErrInvalid)
	}
	if p.s[p.i] != '"' {
		start := p.i
		for !p.eof() && isTokenChar(p.s[p.i]) {
			p.i++
		}
		if start == p.i {
			return "", fmt.Errorf("forwarded: %w: empty value at %d", ErrInvalid, start)
		}
		return p.s[start:p.i], nil
	}
	p.i++
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\' && p.i+1 < len(p.s):
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", fmt.Errorf("forwarded: %w: control character in quoted value", ErrInvalid)
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", fmt.Errorf("forwarded: %w: unterminated quoted value", ErrInvalid)
}

// isTokenChar reports whether c is an RFC 7230 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func quoteIfNeeded(v string) string {
	for i := 0; i < len(v); i++ {
		if !isTokenChar(v[i]) {
			return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
		}
	}
	return v
}

// nodeAddr parses a Forwarded "for" node ("192.0.2.1", "192.0.2.1:80",
// "[2001:db8::1]:80", "unknown", "_hidden") into an address; the zero
// Addr for obfuscated or unknown nodes.
func nodeAddr(node string) netip.Addr {
	node = strings.TrimSpace(node)
	if a, err := netip.ParseAddr(node); err == nil {
		return a.Unmap()
	}
	if host, _, err := net.SplitHostPort(node); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap()
		}
	}
	if a, err := netip.ParseAddr(strings.Trim(node, "[]")); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// validHost accepts a URL authority a client could have sent in a Host
// header (name or address, optional port) and nothing that could break
// out of a URL (no '/', '@', '?', '#', spaces or control characters).
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~:[]%!$&'()*+,;=", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidHost reports whether h is safe to use as the authority of an
// absolute URL (see Resolve).
func ValidHost(h string) bool { return validHost(h) }
