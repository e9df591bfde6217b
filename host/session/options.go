package session

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults applied by Options for zero fields.
const (
	DefaultContainer     = "/session_data/sessions"
	DefaultTimeout       = 20 * time.Minute
	DefaultRefresh       = 30 * time.Second
	DefaultCookieName    = "_zhost_id"
	DefaultCookiePath    = "/"
	DefaultSweepInterval = time.Minute
	DefaultStaleWait     = 2 * time.Second
)

// Sentinel errors of the package; test them with errors.Is.
var (
	// ErrFull: the container holds Limit sessions, so no new session is
	// created. Existing sessions keep working. The middleware answers 503
	// Service Unavailable with Retry-After (see WriteError).
	ErrFull = errors.New("session container is full")
	// ErrNoSession: the request has no live session, and the call does
	// not create one (Handle.Renew, Handle.ID).
	ErrNoSession = errors.New("no session")
	// ErrHeadersWritten: a new session (or a renewed id) needs a
	// Set-Cookie header, but the handler already wrote the response's
	// headers. Touch the session before writing the response.
	ErrHeadersWritten = errors.New("response headers already written; cannot set the session cookie")
	// ErrInvalidOptions: Options failed validation.
	ErrInvalidOptions = errors.New("invalid session options")
	// ErrNoManager: the request did not pass through the session
	// middleware, so there is no session handle in its context.
	ErrNoManager = errors.New("no session middleware on this request")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("session manager closed")
	// ErrValue: a value of a type sessions cannot store.
	ErrValue = errors.New("unsupported session value")
)

// Options configures a Manager. Every field is plain Go so the host can map
// the `sessions` block of cluster.hcl onto it; zero values take the
// documented defaults.
type Options struct {
	// Container is the path of the transient container in the object
	// tree (default "/session_data/sessions"). It is created, with its
	// parent folders, if missing. Point it under a mount of a packless
	// partition so sessions overwrite in place.
	Container string
	// Timeout is the idle timeout: a session not accessed for this long
	// is expired (default 20m).
	Timeout time.Duration
	// Lifetime, if positive, is the absolute lifetime: a session older
	// than this is expired however busy it is. Zero means no limit.
	Lifetime time.Duration
	// Refresh is the granularity of the last-access time (default 30s):
	// a request writes the session's last access only when the stored
	// one is at least this old, so reading a session is not a write.
	// The idle timeout is therefore exact to within Refresh. It must be
	// less than Timeout.
	Refresh time.Duration
	// Limit, if positive, is the maximum number of sessions in the
	// container. When it is reached, creating a session fails with
	// ErrFull (503 from the middleware); existing sessions keep working
	// and expired ones make room as the sweeper removes them. Zero means
	// no limit.
	Limit int

	// CookieName is the browser id cookie's name (default "_zhost_id").
	CookieName string
	// CookiePath is the cookie's Path (default "/").
	CookiePath string
	// CookieDomain is the cookie's Domain (default: none, host-only).
	CookieDomain string
	// SameSite is the cookie's SameSite (default Lax).
	SameSite http.SameSite
	// Secure says when the cookie is Secure (default SecureAuto: when
	// the browser uses https).
	Secure SecureMode
	// PublicURL is the balancer's public address; when it is https the
	// cookie is always Secure.
	PublicURL string
	// TrustedProxies lists the addresses or CIDRs of proxies (the
	// balancer) whose Forwarded / X-Forwarded-Proto headers are
	// believed. Headers from anyone else are ignored.
	TrustedProxies []string

	// StaleWait bounds how long a request waits for this node to see
	// the session version its browser last wrote through another node
	// (read-your-writes; see BrowserIDs.VersionCookieName). Default 2s;
	// negative disables the wait. After it the request goes on with
	// what the node sees.
	StaleWait time.Duration

	// SweepInterval is how often the background sweeper removes expired
	// sessions (default 1m). Negative disables the sweeper (call
	// Manager.Sweep yourself).
	SweepInterval time.Duration
	// NotifyURL, if set, receives a POST with a JSON Event for every
	// session added and deleted (see Event). Delivery is asynchronous
	// and best effort.
	NotifyURL string
	// NotifyAddURL and NotifyDeleteURL, if set, receive the add
	// (respectively delete) events instead of NotifyURL (the config's
	// on_add and on_delete).
	NotifyAddURL, NotifyDeleteURL string
	// OnEvent, if set, is called for every session added and deleted,
	// on the goroutine that commits the change, after the commit. It
	// must not block for long.
	OnEvent func(Event)
	// Node names this node in logs and in webhook events.
	Node string

	// Logger receives the package's logs (default: discarded).
	Logger hclog.Logger
	// Now is the clock (default time.Now). Tests set it to move time.
	Now func() time.Time
	// HTTPClient posts webhook events (default: a client with a 5 s
	// timeout).
	HTTPClient *http.Client
}

// withDefaults returns a copy of o with zero fields defaulted, or an error
// naming every invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.Container == "" {
		o.Container = DefaultContainer
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Refresh == 0 {
		o.Refresh = DefaultRefresh
		if o.Refresh >= o.Timeout {
			o.Refresh = o.Timeout / 4
		}
	}
	if o.CookieName == "" {
		o.CookieName = DefaultCookieName
	}
	if o.CookiePath == "" {
		o.CookiePath = DefaultCookiePath
	}
	if o.SameSite == 0 || o.SameSite == http.SameSiteDefaultMode {
		o.SameSite = http.SameSiteLaxMode
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.StaleWait == 0 {
		o.StaleWait = DefaultStaleWait
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}

	var errs []string
	if !strings.HasPrefix(o.Container, "/") || o.Container == "/" {
		errs = append(errs, fmt.Sprintf("container %q: want an absolute path below the root", o.Container))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Sprintf("timeout %s: must be positive", o.Timeout))
	}
	if o.Lifetime < 0 {
		errs = append(errs, fmt.Sprintf("lifetime %s: must be positive or zero", o.Lifetime))
	}
	if o.Refresh < 0 || o.Refresh >= o.Timeout {
		errs = append(errs, fmt.Sprintf("refresh %s: must be positive and less than the timeout %s", o.Refresh, o.Timeout))
	}
	if o.Limit < 0 {
		errs = append(errs, fmt.Sprintf("limit %d: must be positive or zero", o.Limit))
	}
	if !validCookieName(o.CookieName) {
		errs = append(errs, fmt.Sprintf("cookie name %q: not a valid cookie name", o.CookieName))
	}
	if !strings.HasPrefix(o.CookiePath, "/") {
		errs = append(errs, fmt.Sprintf("cookie path %q: must start with /", o.CookiePath))
	}
	if o.Secure < SecureAuto || o.Secure > SecureNever {
		errs = append(errs, fmt.Sprintf("secure mode %d: unknown", int(o.Secure)))
	}
	for _, n := range []string{o.NotifyURL, o.NotifyAddURL, o.NotifyDeleteURL} {
		if n == "" {
			continue
		}
		u, err := url.Parse(n)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Sprintf("notify URL %q: want an http or https URL", n))
		}
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("%s: %w", strings.Join(errs, "; "), ErrInvalidOptions)
	}
	return o, nil
}

// validCookieName follows RFC 6265's token rule.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
