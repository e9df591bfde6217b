// Command session-app is a small web application of the kind users write
// themselves in Go, using zhost sessions through the net/http middleware
// of host/session. Run several copies against one zhost server and any of
// them serves any browser: the session lives in the server's
// "sessiondata" partition, mounted at /session_data.
//
// Against a running cluster (the server of examples/cluster.hcl):
//
//	go run ./examples/session-app -server 127.0.0.1:9100 -listen 127.0.0.1:8091
//	go run ./examples/session-app -server 127.0.0.1:9100 -listen 127.0.0.1:8092
//
// On its own, with everything in this process (main tree in memory,
// sessions in a packless store):
//
//	go run ./examples/session-app -sessions var/example-sessions
//
// Then open http://127.0.0.1:8091/ : the page counts your visits, keeps a
// cart, renews the session id at "login" and forgets it at "logout".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/session"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/plugins/packless"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "session-app:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	listen, server, sessions, publicURL string
	timeout                             time.Duration
	limit                               int
}

func parse(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("session-app", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8091", "HTTP listen address")
	fs.StringVar(&c.server, "server", "", "zhost server address; empty runs the storage in this process")
	fs.StringVar(&c.sessions, "sessions", "var/example-sessions", "packless store of the in-process mode")
	fs.StringVar(&c.publicURL, "public-url", "", "the balancer's public URL (https makes the cookie Secure)")
	fs.DurationVar(&c.timeout, "timeout", 20*time.Minute, "session idle timeout")
	fs.IntVar(&c.limit, "limit", 0, "most sessions at once (0: no limit)")
	return c, fs.Parse(args)
}

func run(ctx context.Context, args []string, logOut io.Writer) error {
	cfg, err := parse(args, logOut)
	if err != nil {
		return err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "session-app", Output: logOut, Level: hclog.Info})
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	d, closeDB, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeDB()
	m, err := session.New(ctx, d, session.Options{
		Timeout:   cfg.timeout,
		Limit:     cfg.limit,
		PublicURL: cfg.publicURL,
		Node:      cfg.listen,
		Logger:    log.Named("session"),
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Close(cctx)
	}()

	l, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.listen, err)
	}
	srv := &http.Server{Handler: m.Middleware(newMux()), ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving", "url", "http://"+l.Addr().String()+"/")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// openDB opens the object database with the sessions partition mounted at
// /session_data: over the network when -server is set, else in process.
func openDB(ctx context.Context, cfg config, log hclog.Logger) (*db.DB, func(), error) {
	mount := db.Mount{
		Name: "session_data",
		Path: "/session_data",
		Resolve: func(context.Context) (db.Target, error) {
			return db.Target{Partition: "sessiondata", Folder: "session_data"}, nil
		},
	}
	if cfg.server != "" {
		conn, err := client.Dial(ctx, client.ConnOptions{Addr: cfg.server, Name: "session-app", Logger: log.Named("client")})
		if err != nil {
			return nil, nil, fmt.Errorf("connect to %s: %w", cfg.server, err)
		}
		mainC, err := conn.Open(ctx, "main", client.PartitionOptions{})
		if err != nil {
			_ = conn.Close()
			return nil, nil, fmt.Errorf("open partition main: %w", err)
		}
		d, err := db.Open(ctx, mainC, db.Options{
			Logger: log.Named("db"),
			Mounts: []db.Mount{mount},
			OpenPartition: func(ctx context.Context, partition, _ string) (storage.Storage, error) {
				return conn.Open(ctx, partition, client.PartitionOptions{})
			},
		})
		if err != nil {
			_ = mainC.Close()
			_ = conn.Close()
			return nil, nil, err
		}
		return d, func() { _ = d.Close(); _ = mainC.Close(); _ = conn.Close() }, nil
	}
	mainSt := memstorage.New(memstorage.Options{})
	sessSt, err := packless.Open(cfg.sessions, packless.Options{Logger: log.Named("packless")})
	if err != nil {
		return nil, nil, fmt.Errorf("open sessions store: %w", err)
	}
	d, err := db.Open(ctx, mainSt, db.Options{
		Logger: log.Named("db"),
		Mounts: []db.Mount{mount},
		OpenPartition: func(context.Context, string, string) (storage.Storage, error) {
			return nopClose{sessSt}, nil
		},
	})
	if err != nil {
		_ = sessSt.Close()
		return nil, nil, err
	}
	return d, func() { _ = d.Close(); _ = sessSt.Close(); _ = mainSt.Close() }, nil
}

// nopClose keeps the DB from closing a storage this program owns.
type nopClose struct{ storage.Storage }

func (nopClose) Close() error { return nil }

var page = template.Must(template.New("page").Parse(`<!doctype html>
<title>zhost sessions</title>
<h1>Hello{{if .User}}, {{.User}}{{end}}</h1>
<p>Visits in this session: {{.Visits}}. Session key: <code>{{.Key}}</code></p>
<p>Cart: {{range .Cart}}{{.}} {{else}}empty{{end}}</p>
<form method=post action=/cart><input name=item> <button>Add to cart</button></form>
<form method=post action=/login><input name=user> <button>Log in (renews the id)</button></form>
<form method=post action=/logout><button>Log out (forgets the session)</button></form>
`))

// newMux is the application: plain net/http handlers that use the
// session through session.FromRequest.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromRequest(r)
		ctx := r.Context()
		var visits int64
		if _, err := s.Decode(ctx, "visits", &visits); err != nil {
			session.WriteError(w, err)
			return
		}
		// Setting a key creates the session on the first visit.
		if err := s.Set(ctx, "visits", visits+1); err != nil {
			session.WriteError(w, err) // 503 when the limit is reached
			return
		}
		var cart []string
		var user string
		if _, err := s.Decode(ctx, "cart", &cart); err != nil {
			session.WriteError(w, err)
			return
		}
		if _, err := s.Decode(ctx, "user", &user); err != nil {
			session.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, map[string]any{"Visits": visits + 1, "Key": s.Key(), "Cart": cart, "User": user})
	})
	mux.HandleFunc("POST /cart", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromRequest(r)
		var cart []string
		if _, err := s.Decode(r.Context(), "cart", &cart); err != nil {
			session.WriteError(w, err)
			return
		}
		if item := r.FormValue("item"); item != "" {
			cart = append(cart, item)
		}
		if err := s.Set(r.Context(), "cart", cart); err != nil {
			session.WriteError(w, err)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromRequest(r)
		if err := s.Set(r.Context(), "user", r.FormValue("user")); err != nil {
			session.WriteError(w, err)
			return
		}
		// A new id after login, against session fixation; data stays.
		if err := s.Renew(r.Context()); err != nil && !errors.Is(err, session.ErrNoSession) {
			session.WriteError(w, err)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromRequest(r).Invalidate(r.Context()); err != nil {
			session.WriteError(w, err)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	return mux
}
