package balancer

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Policy names how the balancer picks a backend for a request.
type Policy string

// The policies. The config's `policy` attribute uses the same words.
const (
	// PolicyRoundRobin cycles through the healthy backends in order.
	PolicyRoundRobin Policy = "round_robin"
	// PolicyLeastConn picks the healthy backend with the fewest requests
	// in flight through this balancer; ties go round robin.
	PolicyLeastConn Policy = "least_conn"
)

// Defaults applied by New to zero fields of Options.
const (
	DefaultHealthPath     = "/_zhost/health"
	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultRise           = 2
	DefaultFall           = 3
	DefaultQueueTimeout   = 30 * time.Second
	DefaultMaxQueue       = 1024
	DefaultMaxRetryBody   = 64 << 10
	DefaultDialTimeout    = 2 * time.Second
)

// Backend is one app node the balancer forwards to.
type Backend struct {
	// Name is the node's name (the client block's label), used in logs and
	// Status.
	Name string
	// URL is the node's base URL, "http://127.0.0.1:8081". A path in it is
	// prefixed to every forwarded request path.
	URL string
}

// HealthCheck configures the active health checks. Zero fields take the
// Default* values.
type HealthCheck struct {
	// Path is requested with GET on every backend; a 2xx answer within
	// Timeout is a success. host/app serves both /healthz and the
	// default, /_zhost/health.
	Path string
	// Interval is the time between two checks of one backend.
	Interval time.Duration
	// Timeout bounds one check.
	Timeout time.Duration
	// Rise is the number of consecutive successes that bring a down
	// backend up; Fall the number of consecutive failures that take an up
	// backend down.
	Rise, Fall int
	// Disabled turns active checks off. Backends then go down only
	// passively (a connection error) and are tried again after Interval.
	Disabled bool
}

// Options configures a Balancer. The host maps the config's balancer block
// onto it; every field is plain Go.
type Options struct {
	// Name is the balancer node's name, used in logs and Status.
	Name string
	// Listen is the address Start binds, "127.0.0.1:8080". Serve ignores it.
	Listen string
	// PublicURL is the URL browsers use to reach the balancer; it is logged
	// and reported by Status. Absolute URLs are built by the app nodes from
	// the Forwarded headers the balancer sets.
	PublicURL string
	// Backends are the app nodes; at least one.
	Backends []Backend
	// Policy defaults to PolicyRoundRobin.
	Policy Policy
	// HealthCheck configures active checks.
	HealthCheck HealthCheck
	// MaxConnsPerBackend caps the requests in flight to one backend; 0
	// means no cap. Requests over the cap wait in a queue.
	MaxConnsPerBackend int
	// QueueTimeout bounds the wait for a free backend slot; the request is
	// then answered 503. Default DefaultQueueTimeout.
	QueueTimeout time.Duration
	// MaxQueue bounds the number of waiting requests; one more is answered
	// 503 at once. Default DefaultMaxQueue.
	MaxQueue int
	// TrustedProxies lists CIDRs or addresses whose Forwarded and
	// X-Forwarded-* headers are kept; those headers are stripped from
	// every other client.
	TrustedProxies []string
	// MaxRetryBody is the largest request body the balancer buffers so the
	// request can be retried on another backend; larger bodies are
	// streamed and never retried. 0 means DefaultMaxRetryBody; negative
	// disables buffering.
	MaxRetryBody int64
	// MaxAttempts bounds the backends one request is tried on; 0 means
	// every backend once. 1 disables retries.
	MaxAttempts int
	// DialTimeout bounds connecting to a backend. Default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// ResponseTimeout bounds the wait for a backend's response headers
	// once the request is sent; 0 means no limit. A timeout counts as a
	// failure before answering.
	ResponseTimeout time.Duration
	// Logger receives health transitions, retries and errors. Default
	// hclog.NewNullLogger().
	Logger hclog.Logger
	// AccessLogger receives one Info line per request. Default
	// Logger.Named("access").
	AccessLogger hclog.Logger
}

// ErrInvalidOptions is wrapped by New's errors.
var ErrInvalidOptions = errors.New("invalid balancer options")

// normalize validates o and fills defaults, returning the parsed backend
// URLs.
func (o *Options) normalize() ([]*url.URL, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("balancer %q: %w: %s", o.Name, ErrInvalidOptions, fmt.Sprintf(format, args...))
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.AccessLogger == nil {
		o.AccessLogger = o.Logger.Named("access")
	}
	switch o.Policy {
	case "":
		o.Policy = PolicyRoundRobin
	case PolicyRoundRobin, PolicyLeastConn:
	default:
		return nil, bad("unknown policy %q (want %q or %q)", o.Policy, PolicyRoundRobin, PolicyLeastConn)
	}
	if len(o.Backends) == 0 {
		return nil, bad("no backends")
	}
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, bad("public URL %q is not an absolute http(s) URL", o.PublicURL)
		}
	}
	urls := make([]*url.URL, len(o.Backends))
	seen := map[string]bool{}
	for i, be := range o.Backends {
		if be.Name == "" {
			return nil, bad("backend %d has no name", i)
		}
		if seen[be.Name] {
			return nil, bad("duplicate backend %q", be.Name)
		}
		seen[be.Name] = true
		u, err := url.Parse(be.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, bad("backend %q: URL %q is not an absolute http(s) URL", be.Name, be.URL)
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, bad("backend %q: URL %q must not carry a query, fragment or user", be.Name, be.URL)
		}
		urls[i] = u
	}
	hc := &o.HealthCheck
	if hc.Path == "" {
		hc.Path = DefaultHealthPath
	}
	if !strings.HasPrefix(hc.Path, "/") {
		return nil, bad("health check path %q must start with /", hc.Path)
	}
	if hc.Interval == 0 {
		hc.Interval = DefaultHealthInterval
	}
	if hc.Timeout == 0 {
		hc.Timeout = DefaultHealthTimeout
	}
	if hc.Rise == 0 {
		hc.Rise = DefaultRise
	}
	if hc.Fall == 0 {
		hc.Fall = DefaultFall
	}
	if hc.Interval < 0 || hc.Timeout < 0 || hc.Rise < 0 || hc.Fall < 0 {
		return nil, bad("negative health check setting")
	}
	if o.MaxConnsPerBackend < 0 {
		return nil, bad("negative max connections per backend")
	}
	if o.QueueTimeout == 0 {
		o.QueueTimeout = DefaultQueueTimeout
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = DefaultMaxQueue
	}
	if o.QueueTimeout < 0 || o.MaxQueue < 0 {
		return nil, bad("negative queue setting")
	}
	if o.MaxRetryBody == 0 {
		o.MaxRetryBody = DefaultMaxRetryBody
	}
	if o.MaxAttempts <= 0 || o.MaxAttempts > len(o.Backends) {
		o.MaxAttempts = len(o.Backends)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.DialTimeout < 0 || o.ResponseTimeout < 0 {
		return nil, bad("negative timeout")
	}
	return urls, nil
}
