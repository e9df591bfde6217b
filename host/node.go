package host

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/app"
	"github.com/zhostdb/zhost/host/balancer"
	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/session"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// NodeOptions configures RunNode.
type NodeOptions struct {
	// Logger is the node's logger (see NewLogger).
	Logger hclog.Logger
	// Exe is the zhost binary that serves the built-in plugins; default
	// os.Executable().
	Exe string
	// ShutdownTimeout bounds the graceful part of stopping (draining the
	// balancer, finishing requests, finishing open commits). Default 20s.
	ShutdownTimeout time.Duration
	// Ready, if set, is called once the node serves (with its bound
	// address), for tests and for the supervisor's readiness message.
	Ready func(addr net.Addr)
}

// RunNode runs the node called name of cfg until ctx ends, then stops it
// gracefully: a balancer stops accepting and drains; an app node finishes
// its requests, then closes its sessions, database and connection; the
// server finishes or aborts open commits, then closes its storages and
// stops its plugins. The node's pid file exists while it runs.
func RunNode(ctx context.Context, cfg *hcl.Config, name string, opts NodeOptions) error {
	n := cfg.Node(name)
	if n == nil {
		return fmt.Errorf("no node %q in %s", name, cfg.Filename)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 20 * time.Second
	}
	if err := WritePIDFile(n.PidFile); err != nil {
		return fmt.Errorf("node %q: %w", name, err)
	}
	defer RemovePIDFile(n.PidFile)
	err := runNode(ctx, cfg, n, opts)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		// Asked to stop before the node was up (an app node still
		// waiting for its server): a clean stop, not a failure.
		opts.Logger.Info("stopped while starting", "reason", err)
		return nil
	}
	return err
}

func runNode(ctx context.Context, cfg *hcl.Config, n *hcl.Node, opts NodeOptions) error {
	switch n.Kind {
	case hcl.KindServer:
		return runServer(ctx, cfg, opts)
	case hcl.KindClient:
		return runClient(ctx, cfg, cfg.Client(n.Name), opts)
	case hcl.KindBalancer:
		for _, b := range cfg.Balancers {
			if b.Name == n.Name {
				return runBalancer(ctx, cfg, b, opts)
			}
		}
	}
	return fmt.Errorf("node %q: unknown kind %q", n.Name, n.Kind)
}

// newPluginManager returns a manager that knows every plugin block.
func newPluginManager(cfg *hcl.Config, opts NodeOptions, busyPoll time.Duration) (*pluginhost.Manager, error) {
	mgr, err := pluginhost.NewManager(pluginhost.Options{
		Logger:      opts.Logger.Named("plugin"),
		ZhostPath:   opts.Exe,
		PluginDir:   cfg.PluginDir,
		HangTimeout: cfg.PluginHangTimeout,
		BusyPoll:    busyPoll,
		BaseDir:     cfg.Dir,
	})
	if err != nil {
		return nil, fmt.Errorf("start plugin manager: %w", err)
	}
	for _, p := range cfg.Plugins {
		if err := mgr.Add(pluginhost.SpecFromConfig(p)); err != nil {
			closePlugins(mgr, opts.Logger)
			return nil, fmt.Errorf("plugin %q (%s): %w", p.Name, p.DeclRange, err)
		}
	}
	return mgr, nil
}

// closePlugins stops every plugin process of mgr (and closes the
// storages opened through it), logging what failed: it runs on every exit
// path of a node, where there is no caller left to return an error to.
func closePlugins(mgr *pluginhost.Manager, log hclog.Logger) {
	if err := mgr.Close(); err != nil {
		log.Error("stopping plugins", "error", err)
	}
}

func runServer(ctx context.Context, cfg *hcl.Config, opts NodeOptions) (err error) {
	sc := cfg.Server
	log := opts.Logger
	mgr, err := newPluginManager(cfg, opts, sc.BusyPoll)
	if err != nil {
		return err
	}
	defer closePlugins(mgr, log)
	parts := make(map[string]server.Partition, len(cfg.Partitions))
	for _, p := range cfg.Partitions {
		sb := cfg.Storage(p.Storage)
		if sb == nil {
			return fmt.Errorf("partition %q: no storage %q", p.Name, p.Storage)
		}
		st, err := mgr.OpenStorage(ctx, pluginhost.StorageSpecFromConfig(sb))
		if err != nil {
			return fmt.Errorf("partition %q: open storage %q (%s): %w", p.Name, sb.Name, sb.DeclRange, err)
		}
		log.Info("partition ready", "partition", p.Name, "storage", sb.Name, "type", sb.Type, "read_only", p.ReadOnly || sb.ReadOnly)
		parts[p.Name] = server.Partition{Storage: st, ReadOnly: p.ReadOnly || sb.ReadOnly}
	}
	tlsConf, err := serverTLS(sc.TLS)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Options{
		Name:                sc.Name,
		Listen:              sc.Listen,
		Partitions:          parts,
		TLS:                 tlsConf,
		CommitTimeout:       sc.CommitTimeout,
		TransactionTimeout:  sc.TransactionTimeout,
		MaxMessageSize:      int(sc.MaxMessageSize),
		BusyPoll:            sc.BusyPoll,
		InvalidationLogSize: int(sc.InvalidationLogSize),
		DataDir:             filepath.Dir(sc.PidFile),
		Logger:              log,
	})
	if err != nil {
		return fmt.Errorf("server %q: %w", sc.Name, err)
	}
	if err := srv.Start(ctx); err != nil {
		// Start may have opened the invalidation logs before its listen
		// failed; Shutdown closes them (and is harmless otherwise).
		sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
		defer cancel()
		if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, server.ErrServerClosed) {
			log.Warn("cleaning up after a failed start", "error", serr)
		}
		return fmt.Errorf("server %q: %w", sc.Name, err)
	}
	log.Info("storage server listening", "addr", srv.Addr().String(), "partitions", len(parts), "busy_poll", sc.BusyPoll.String())
	if opts.Ready != nil {
		opts.Ready(srv.Addr())
	}
	<-ctx.Done()
	log.Info("stopping: finishing open commits")
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, server.ErrServerClosed) {
		log.Warn("server shutdown cut short", "error", err)
	}
	return nil
}

// dialServer connects to the storage server, retrying with backoff until
// ctx ends: app nodes may start before the server listens.
func dialServer(ctx context.Context, c *hcl.Client, tlsConf *tls.Config, log hclog.Logger) (*client.Conn, error) {
	backoff := 100 * time.Millisecond
	for {
		conn, err := client.Dial(ctx, client.ConnOptions{
			Addr:           c.Server,
			Name:           c.Name,
			TLS:            tlsConf,
			ConnectTimeout: c.ConnectTimeout,
			BusyPoll:       c.BusyPoll,
			Logger:         log.Named("client"),
		})
		if err == nil {
			return conn, nil
		}
		log.Warn("storage server not reachable yet; retrying", "addr", c.Server, "error", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connect to %s: %w (last attempt: %v)", c.Server, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func runClient(ctx context.Context, cfg *hcl.Config, c *hcl.Client, opts NodeOptions) error {
	log := opts.Logger
	tlsConf, err := clientTLS(c.TLS)
	if err != nil {
		return fmt.Errorf("client %q: %w", c.Name, err)
	}
	conn, err := dialServer(ctx, c, tlsConf, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	main, err := conn.Open(ctx, c.Partition, client.PartitionOptions{CacheSize: c.CacheSize})
	if err != nil {
		return fmt.Errorf("open partition %q: %w", c.Partition, err)
	}
	defer main.Close()

	mgr, err := newPluginManager(cfg, opts, 0) // mount functions are not on a hot path
	if err != nil {
		return err
	}
	defer closePlugins(mgr, log)
	var mounts []db.Mount
	for _, m := range cfg.Mounts {
		pluginName := m.Plugin
		if pluginName == "" && m.PluginPath != "" {
			pluginName = "mount-" + m.Name
			if err := mgr.Add(pluginhost.Spec{Name: pluginName, Path: m.PluginPath, Range: &m.DeclRange}); err != nil {
				return err
			}
		}
		req := sdk.MountRequest{Function: m.Function, Path: m.Path, Args: m.Args}
		mounts = append(mounts, db.Mount{
			Name: m.Name,
			Path: m.Path,
			Resolve: func(ctx context.Context) (db.Target, error) {
				t, err := mgr.Resolve(ctx, pluginName, req)
				if err != nil {
					return db.Target{}, err
				}
				return db.Target{Partition: t.Partition, Folder: t.Folder, Server: t.Server}, nil
			},
		})
	}
	d, err := db.Open(ctx, main, db.Options{
		Logger:        log.Named("db"),
		MainPartition: c.Partition,
		Mounts:        mounts,
		OpenPartition: func(ctx context.Context, partition, addr string) (storage.Storage, error) {
			if addr == "" || addr == c.Server {
				return conn.Open(ctx, partition, client.PartitionOptions{CacheSize: c.CacheSize})
			}
			// Another server: dialed with the node's connect_timeout and
			// tls block; the certificate is checked against addr's host
			// unless server_name says otherwise.
			return client.Open(ctx, client.Options{
				Addr: addr, Partition: partition, Name: c.Name, CacheSize: c.CacheSize,
				TLS: tlsConf, ConnectTimeout: c.ConnectTimeout, BusyPoll: c.BusyPoll, Logger: log.Named("client"),
			})
		},
		Meta: storage.TxMeta{Extension: map[string]string{"node": c.Name}},
	})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer d.Close()

	front := balancerOf(cfg, c.Name)
	publicURL := "http://" + c.Advertise
	if front != nil {
		publicURL = front.PublicURL
	}
	trusted := trustedProxies(ctx, cfg, log)
	var sessions *session.Manager
	if s := cfg.Sessions; s != nil {
		sameSite, err := session.ParseSameSite(s.SameSite)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		secure, err := session.ParseSecureMode(s.Secure)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		sessions, err = session.New(ctx, d, session.Options{
			Container:       s.Container,
			Timeout:         s.Timeout,
			Lifetime:        s.Lifetime,
			Refresh:         s.Refresh,
			Limit:           int(s.Limit),
			CookieName:      s.Cookie,
			CookiePath:      s.CookiePath,
			CookieDomain:    s.CookieDomain,
			SameSite:        sameSite,
			Secure:          secure,
			PublicURL:       publicURL,
			TrustedProxies:  trusted,
			SweepInterval:   s.SweepInterval,
			NotifyAddURL:    s.OnAdd,
			NotifyDeleteURL: s.OnDelete,
			Node:            c.Name,
			Logger:          log.Named("session"),
		})
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = sessions.Close(cctx)
		}()
	}
	a, err := app.New(app.Options{
		Node:           c.Name,
		DB:             d,
		PublicURL:      publicURL,
		TrustedProxies: trusted,
		Sessions:       sessions,
		WaitForTid:     main.WaitForTid,
		Status:         app.ClientStatus(main),
		Logger:         log.Named("app"),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("client %q: listen: %w", c.Name, err)
	}
	hs := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		// Longer than the balancer's idle timeout (90s), so the
		// balancer, not the node, closes a kept-alive connection and
		// never sends a request on one the node is closing.
		IdleTimeout: 120 * time.Second,
		ErrorLog:    log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("app node serving", "addr", ln.Addr().String(), "public_url", publicURL, "server", c.Server, "busy_poll", c.BusyPoll.String())
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("client %q: serve: %w", c.Name, err)
	}
	log.Info("stopping: finishing requests")
	a.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("requests cut short", "error", err)
	}
	return nil
}

func runBalancer(ctx context.Context, cfg *hcl.Config, b *hcl.Balancer, opts NodeOptions) error {
	log := opts.Logger
	var backends []balancer.Backend
	for _, name := range b.Clients {
		c := cfg.Client(name)
		if c == nil {
			return fmt.Errorf("balancer %q: no client %q", b.Name, name)
		}
		backends = append(backends, balancer.Backend{Name: c.Name, URL: "http://" + c.Advertise})
	}
	accessLog := log.Named("access")
	if b.AccessLog != "" {
		al, closeAL, err := NewLogger(b.Name+".access", b.AccessLog, io.Discard)
		if err != nil {
			return fmt.Errorf("balancer %q: access_log: %w", b.Name, err)
		}
		defer closeAL()
		accessLog = al
	}
	bl, err := balancer.New(balancer.Options{
		Name:      b.Name,
		Listen:    b.Listen,
		PublicURL: b.PublicURL,
		Backends:  backends,
		Policy:    balancer.Policy(b.Policy),
		HealthCheck: balancer.HealthCheck{
			Path:     b.HealthCheck.Path,
			Interval: b.HealthCheck.Interval,
			Timeout:  b.HealthCheck.Timeout,
			Rise:     int(b.HealthCheck.Rise),
			Fall:     int(b.HealthCheck.Fall),
		},
		MaxConnsPerBackend: int(b.MaxConnsPerClient),
		QueueTimeout:       b.QueueTimeout,
		TrustedProxies:     b.TrustedProxies,
		Logger:             log,
		AccessLogger:       accessLog,
	})
	if err != nil {
		return fmt.Errorf("balancer %q: %w", b.Name, err)
	}
	if err := bl.Start(ctx); err != nil {
		return fmt.Errorf("balancer %q: %w", b.Name, err)
	}
	if opts.Ready != nil {
		opts.Ready(bl.Addr())
	}
	<-ctx.Done()
	drain := b.DrainTimeout
	if drain <= 0 {
		drain = opts.ShutdownTimeout
	}
	log.Info("stopping: draining", "timeout", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := bl.Shutdown(sctx); err != nil && !errors.Is(err, balancer.ErrClosed) {
		log.Warn("drain cut short", "error", err)
	}
	return nil
}

// balancerOf returns the balancer that fronts client name (the first one
// listing it, else the first balancer), or nil.
func balancerOf(cfg *hcl.Config, name string) *hcl.Balancer {
	for _, b := range cfg.Balancers {
		for _, c := range b.Clients {
			if c == name {
				return b
			}
		}
	}
	if len(cfg.Balancers) > 0 {
		return cfg.Balancers[0]
	}
	return nil
}

// trustedProxies returns the addresses whose forwarded headers app nodes
// believe: the IP addresses of every balancer (a host name is resolved
// once, at start; one that does not resolve is logged and left out).
func trustedProxies(ctx context.Context, cfg *hcl.Config, log hclog.Logger) []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range cfg.Balancers {
		host, _, err := net.SplitHostPort(b.Advertise)
		if err != nil || host == "" {
			continue
		}
		ips := []string{host}
		if net.ParseIP(host) == nil {
			ips, err = net.DefaultResolver.LookupHost(ctx, host)
			if err != nil {
				log.Warn("balancer address does not resolve; its forwarded headers will not be trusted", "balancer", b.Name, "host", host, "error", err)
				continue
			}
		}
		for _, ip := range ips {
			if !seen[ip] {
				seen[ip] = true
				out = append(out, ip)
			}
		}
	}
	return out
}

// BrowserURL returns where to point a browser: the first balancer's public
// URL, or the first app node.
func BrowserURL(cfg *hcl.Config) string {
	if len(cfg.Balancers) > 0 {
		return cfg.Balancers[0].PublicURL
	}
	if len(cfg.Clients) > 0 {
		u := url.URL{Scheme: "http", Host: cfg.Clients[0].Advertise, Path: "/"}
		return u.String()
	}
	return ""
}

// NodeBrowserURL returns where to point a browser at node name: a
// balancer's public URL, an app node's own address, or BrowserURL for the
// server (which serves no HTTP) and for unknown names.
func NodeBrowserURL(cfg *hcl.Config, name string) string {
	for _, b := range cfg.Balancers {
		if b.Name == name {
			return b.PublicURL
		}
	}
	if c := cfg.Client(name); c != nil {
		u := url.URL{Scheme: "http", Host: c.Advertise, Path: "/"}
		return u.String()
	}
	return BrowserURL(cfg)
}
