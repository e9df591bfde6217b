package sdk

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/zhostdb/zhost/internal/busypoll"
)

var (
	loggerOnce sync.Once
	logger     hclog.Logger
)

// Logger returns the plugin process's logger: hclog JSON on stderr, at the
// level the host asked for (EnvLogLevel, default info). The host reads
// these lines and logs them under the plugin's name at the same level.
// Never write to stdout in a plugin: stdout carries the handshake.
func Logger() hclog.Logger {
	loggerOnce.Do(func() {
		level := hclog.LevelFromString(os.Getenv(EnvLogLevel))
		if level == hclog.NoLevel {
			level = hclog.Info
		}
		logger = hclog.New(&hclog.LoggerOptions{
			Level:      level,
			Output:     os.Stderr,
			JSONFormat: true,
		})
	})
	return logger
}

// parentPoll is how often a plugin checks that the host is still there.
const parentPoll = 250 * time.Millisecond

// Serve serves p to the zhost host that started this process and returns
// when the host is done with it. Call it from main; a binary run by hand
// (without the handshake cookie) prints a hint on stderr and exits 1.
//
// On every way out — the host shutting the plugin down, the host process
// dying (its pid disappears as the parent), SIGTERM — Serve closes every
// storage the host left open, so backends flush and unlock their files.
func Serve(p *Plugin) {
	log := Logger()
	srv := newServer(p, log.Named("server"))
	ppid := os.Getppid()

	var once sync.Once
	shutdown := func(why string) {
		once.Do(func() {
			log.Debug("plugin shutting down", "reason", why)
			srv.closeAll()
		})
	}

	// The host going away (even by SIGKILL) must not leave this process
	// behind: go-plugin does not watch for it, so poll our parent. Linux
	// hosts also set a parent-death signal (SIGTERM), handled below.
	go func() {
		t := time.NewTicker(parentPoll)
		defer t.Stop()
		for range t.C {
			if os.Getppid() != ppid {
				shutdown("host process exited")
				os.Exit(0)
			}
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		s := <-sig
		shutdown(fmt.Sprintf("signal %v", s))
		os.Exit(0)
	}()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: ServerPluginSets(p, srv),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, GRPCServerOptions()...)
			// The polling credentials are plain ones; a host that asked
			// go-plugin for TLS (PLUGIN_CLIENT_CERT, which zhost does
			// not) keeps its TLS credentials and no polling.
			if d := busypoll.FromEnv(EnvBusyPoll); d > 0 && os.Getenv("PLUGIN_CLIENT_CERT") == "" {
				log.Debug("reads from the host busy-poll", "window", d.String())
				opts = append(opts, grpc.Creds(newPollCreds(d)))
			}
			return grpc.NewServer(opts...)
		},
		Logger: log,
	})
	shutdown("host closed the plugin")
}
