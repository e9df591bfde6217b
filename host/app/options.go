package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/session"
	"github.com/zhostdb/zhost/host/storage"
)

// Defaults applied by New to zero fields of Options.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultTidWait      = 5 * time.Second
	DefaultTidCookie    = "_zhost_tid"
	DefaultTidMaxAge    = time.Minute
	DefaultListLimit    = 100
	MaxListLimit        = 1000
	MaxTxOps            = 1000
	// MaxJSONDepth bounds the nesting of a document's data: the object
	// layer decodes records to 64 levels, and a document must always be
	// readable again.
	MaxJSONDepth = 32
)

// HealthPath is the health check path the config's health_check block
// defaults to; the app answers it like /healthz.
const HealthPath = "/_zhost/health"

// Header names the app reads and writes.
const (
	// HeaderNode names the node that answered; on every response.
	HeaderNode = "X-Zhost-Node"
	// HeaderTid carries a write's tid in the response, and in a request
	// the tid the answer must reflect (read-your-writes).
	HeaderTid = "X-Zhost-Tid"
)

// Options configures an App. The host fills it from the config and the
// running node; tests fill it over host/db on memstorage.
type Options struct {
	// Node is this node's name (the client block's label), sent in
	// X-Zhost-Node on every response.
	Node string
	// DB is the object database the app publishes. Required. The app
	// never closes it.
	DB *db.DB
	// PublicURL is the balancer's public URL, the prefix of every
	// absolute URL the app emits unless trusted forwarding headers say
	// otherwise. Its path, if any, prefixes every emitted path.
	PublicURL string
	// TrustedProxies lists the CIDRs or addresses (the balancer) whose
	// Forwarded and X-Forwarded-* headers are believed.
	TrustedProxies []string
	// Sessions serves /_session and wraps every request in its
	// middleware (sessions load lazily, so requests that do not touch
	// theirs cost nothing); nil answers 501 at /_session.
	Sessions *session.Manager
	// WaitForTid blocks until this node has applied the transaction tid
	// of the main partition (its reads will see it), or ctx ends. The
	// default polls DB.Storage().LastTid; a host/client connection passes
	// its own, which wakes on invalidations.
	WaitForTid func(ctx context.Context, tid storage.Tid) error
	// TidWait bounds the read-your-writes wait; after it the request is
	// answered 503. Default DefaultTidWait.
	TidWait time.Duration
	// TidCookie is the name of the read-your-writes cookie. Default
	// DefaultTidCookie.
	TidCookie string
	// TidMaxAge is the cookie's lifetime: long enough for every node to
	// apply the write. Default DefaultTidMaxAge.
	TidMaxAge time.Duration
	// Status reports what the app cannot see itself: the server
	// connection and the client cache. Nil reports the storage as local.
	Status func(ctx context.Context) NodeStatus
	// ReservedPaths are subtrees the HTTP API neither shows nor changes
	// (403): Go code owns them. The session container (from Sessions) is
	// always reserved, so that no browser can list other browsers'
	// sessions or delete them.
	ReservedPaths []string
	// MaxBodyBytes bounds request bodies (413 beyond). Default
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives request errors. Default hclog.NewNullLogger().
	Logger hclog.Logger
}

// ErrInvalidOptions is wrapped by New's errors.
var ErrInvalidOptions = errors.New("invalid app options")

func (o *Options) normalize() (*url.URL, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("app %q: %w: %s", o.Node, ErrInvalidOptions, fmt.Sprintf(format, args...))
	}
	if o.DB == nil {
		return nil, bad("no DB")
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	var pub *url.URL
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, bad("public URL %q is not an absolute http(s) URL without query", o.PublicURL)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		pub = u
	}
	if o.TidWait == 0 {
		o.TidWait = DefaultTidWait
	}
	if o.TidCookie == "" {
		o.TidCookie = DefaultTidCookie
	}
	if o.TidMaxAge == 0 {
		o.TidMaxAge = DefaultTidMaxAge
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.TidWait < 0 || o.TidMaxAge < 0 || o.MaxBodyBytes < 0 {
		return nil, bad("negative limit")
	}
	return pub, nil
}
