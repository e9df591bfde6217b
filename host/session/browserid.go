package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zhostdb/zhost/internal/forwarded"
)

// idBytes is the number of random bytes in a browser id: 192 bits, well
// above the 128 the design asks for, and a multiple of 3 so the base64
// form has no padding.
const idBytes = 24

// IDLength is the length of a browser id in characters (unpadded
// base64url of 24 random bytes).
const IDLength = idBytes * 4 / 3

// NewID returns a fresh browser id: 192 bits from crypto/rand, encoded as
// unpadded base64url (IDLength characters from [A-Za-z0-9_-]). It fails
// only if the operating system's random source fails.
func NewID() (string, error) {
	var b [idBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random browser id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ValidID reports whether id has the form NewID produces. A cookie that
// fails this check is treated like no cookie at all: the request starts a
// new session, it never gets an error page.
func ValidID(id string) bool {
	if len(id) != IDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// Key returns the non-secret handle of a browser id: the first 16 bytes of
// its SHA-256, in hex. The id itself is a credential (whoever has it owns
// the session), so logs and webhooks carry the key instead; an application
// that wants to correlate calls Key on the id it holds.
func Key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// SecureMode says when the browser id cookie carries the Secure attribute.
type SecureMode int

const (
	// SecureAuto (the default) sets Secure whenever the browser talks
	// https to the public address: the configured PublicURL is https, or
	// the request itself arrived over TLS, or a trusted proxy says so in
	// Forwarded / X-Forwarded-Proto. This is the fix for Zope's "Secure
	// silently not set behind a TLS balancer".
	SecureAuto SecureMode = iota
	// SecureAlways sets Secure on every cookie. Browsers then never send
	// the cookie over plain http, so sessions only work over https.
	SecureAlways
	// SecureNever never sets Secure. Only for development over plain
	// http on a non-local address; it lets the id leak on the wire.
	SecureNever
)

// String renders the mode as the config spells it.
func (m SecureMode) String() string {
	switch m {
	case SecureAuto:
		return "auto"
	case SecureAlways:
		return "always"
	case SecureNever:
		return "never"
	}
	return fmt.Sprintf("SecureMode(%d)", int(m))
}

// ParseSecureMode parses "auto", "always" or "never" (the config's
// spelling; "" means auto).
func ParseSecureMode(s string) (SecureMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return SecureAuto, nil
	case "always", "true":
		return SecureAlways, nil
	case "never", "false":
		return SecureNever, nil
	}
	return SecureAuto, fmt.Errorf("secure mode %q: want auto, always or never: %w", s, ErrInvalidOptions)
}

// ParseSameSite parses "lax", "strict", "none" ("" means lax, the
// default) into the net/http value.
func ParseSameSite(s string) (http.SameSite, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "lax":
		return http.SameSiteLaxMode, nil
	case "strict":
		return http.SameSiteStrictMode, nil
	case "none":
		return http.SameSiteNoneMode, nil
	}
	return http.SameSiteLaxMode, fmt.Errorf("same_site %q: want lax, strict or none: %w", s, ErrInvalidOptions)
}

// BrowserIDs reads and writes the browser id cookie. It keeps no state
// besides its configuration, so one value is safe for concurrent use by
// every request. It never touches storage: whether an id names a live
// session is the Manager's question.
type BrowserIDs struct {
	name string
	// versionMaxAge is the lifetime of the version cookie.
	versionMaxAge time.Duration
	path          string
	domain        string
	sameSite      http.SameSite
	secure        SecureMode
	// publicHTTPS is true when the configured public URL is https.
	publicHTTPS bool
	// trust names the proxies whose forwarding headers are believed.
	trust *forwarded.Trust
}

// newBrowserIDs builds the cookie half of a Manager from checked options.
func newBrowserIDs(o *Options) (*BrowserIDs, error) {
	b := &BrowserIDs{
		name:     o.CookieName,
		path:     o.CookiePath,
		domain:   o.CookieDomain,
		sameSite: o.SameSite,
		secure:   o.Secure,
		// Long enough for every node to apply a write (milliseconds),
		// short enough that a stale one after an expiry costs little.
		versionMaxAge: min(time.Minute, o.Timeout/2),
	}
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("public URL %q: not an absolute URL: %w", o.PublicURL, ErrInvalidOptions)
		}
		b.publicHTTPS = strings.EqualFold(u.Scheme, "https")
	}
	trust, err := forwarded.ParseTrust(o.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrInvalidOptions)
	}
	b.trust = trust
	if b.sameSite == http.SameSiteNoneMode && b.secure == SecureNever {
		// Browsers drop SameSite=None cookies without Secure.
		return nil, fmt.Errorf("same_site none needs Secure cookies, but secure is never: %w", ErrInvalidOptions)
	}
	return b, nil
}

// CookieName returns the name of the browser id cookie.
func (b *BrowserIDs) CookieName() string { return b.name }

// FromRequest returns the browser id the request's cookie carries, and
// whether it carried a well-formed one. A missing or malformed cookie
// gives ("", false). When a browser sends the cookie more than once (a
// stale copy under another path or domain), the first well-formed value
// wins, as browsers send the most specific path first.
func (b *BrowserIDs) FromRequest(r *http.Request) (string, bool) {
	for _, c := range r.CookiesNamed(b.name) {
		if ValidID(c.Value) {
			return c.Value, true
		}
	}
	return "", false
}

// Secure reports whether a cookie set in answer to r gets the Secure
// attribute (see SecureMode).
func (b *BrowserIDs) Secure(r *http.Request) bool {
	switch b.secure {
	case SecureAlways:
		return true
	case SecureNever:
		return false
	}
	if b.publicHTTPS || r.TLS != nil {
		return true
	}
	return b.forwardedHTTPS(r)
}

// forwardedHTTPS reports whether trusted forwarding headers (Forwarded,
// RFC 7239, else X-Forwarded-Proto) say the browser used https. They are
// believed only from a trusted peer, and only as far as the chain of
// trusted hops reaches (see forwarded.Trust.Resolve): anyone else could
// forge them.
func (b *BrowserIDs) forwardedHTTPS(r *http.Request) bool {
	if b.trust.Empty() {
		return false
	}
	o := b.trust.Resolve(r)
	return o.FromHeaders && o.Proto == "https"
}

// VersionCookieName returns the name of the read-your-writes cookie that
// accompanies the browser id: the version of the session data this
// browser last wrote, so the next request, whichever node serves it,
// waits until that node sees at least that version.
func (b *BrowserIDs) VersionCookieName() string { return b.name + "_v" }

// versionFromRequest returns the version the request's cookie asks for
// (0 for none or malformed).
func (b *BrowserIDs) versionFromRequest(r *http.Request) uint64 {
	c, err := r.Cookie(b.VersionCookieName())
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(c.Value, 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func (b *BrowserIDs) versionCookie(r *http.Request, v uint64) *http.Cookie {
	c := b.cookie(r, strconv.FormatUint(v, 10))
	c.Name = b.VersionCookieName()
	c.MaxAge = max(1, int(b.versionMaxAge/time.Second))
	if v == 0 {
		c.Value, c.MaxAge = "", -1
	}
	return c
}

// cookie builds the browser id cookie for id in answer to r.
func (b *BrowserIDs) cookie(r *http.Request, id string) *http.Cookie {
	return &http.Cookie{
		Name:     b.name,
		Value:    id,
		Path:     b.path,
		Domain:   b.domain,
		HttpOnly: true,
		Secure:   b.Secure(r),
		SameSite: b.sameSite,
	}
}

// SetCookie adds the Set-Cookie header carrying id to w, and marks the
// response as private to this browser: Vary: Cookie and Cache-Control:
// no-store, so no shared cache hands one browser's id to another. It must
// be called before the response's headers are written.
func (b *BrowserIDs) SetCookie(w http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(w, b.cookie(r, id))
	noCache(w.Header())
}

// ExpireCookie tells the browser to forget its id (after the session was
// invalidated), with the same caching headers as SetCookie.
func (b *BrowserIDs) ExpireCookie(w http.ResponseWriter, r *http.Request) {
	c := b.cookie(r, "")
	c.MaxAge = -1
	http.SetCookie(w, c)
	noCache(w.Header())
}

func noCache(h http.Header) {
	addVary(h, "Cookie")
	h.Set("Cache-Control", "no-store, no-cache, must-revalidate, private")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
}

// addVary adds a field to Vary unless it is already listed.
func addVary(h http.Header, field string) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if f == "*" || strings.EqualFold(f, field) {
				return
			}
		}
	}
	h.Add("Vary", field)
}
