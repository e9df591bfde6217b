package zhostcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host"
)

func init() {
	var node, machine string
	RegisterCommand(&Command{
		Name:  "run",
		Usage: "[--node NAME | --machine NAME] FILE",
		Short: "run the cluster a cluster.hcl describes",
		Long: `Without --node, every node of the file (the server, each client, each
balancer) runs as its own child process of this one, which restarts a node
that crashes and, on SIGINT or SIGTERM, stops them in order: the balancer
drains, the app nodes finish their requests, the server finishes open
commits. With --node NAME only that node runs, in this process (for
clusters spread over several machines); --machine NAME runs, supervised,
every node placed on that machine.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&node, "node", "", "run only the node `NAME`, in this process")
			fs.StringVar(&machine, "machine", "", "run every node of the machine `NAME`")
		},
		Run: func(env *Env, fs *flag.FlagSet, args []string) int {
			if len(args) != 1 {
				fmt.Fprintln(env.Stderr, "zhost run: want exactly one FILE")
				fs.Usage()
				return ExitUsage
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runCluster(ctx, env, args[0], node, machine)
		},
	})
}

func runCluster(ctx context.Context, env *Env, file, node, machine string) int {
	if node != "" && machine != "" {
		fmt.Fprintln(env.Stderr, "zhost run: give --node or --machine, not both")
		return ExitUsage
	}
	cfg, code := loadConfig(ctx, env, "run", file)
	if cfg == nil {
		return code
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(env.Stderr, "zhost run: %v\n", err)
		return ExitFailure
	}
	if node != "" {
		n := cfg.Node(node)
		if n == nil {
			fmt.Fprintf(env.Stderr, "zhost run: no node %q in %s\n", node, file)
			return ExitUsage
		}
		log, closeLog, err := host.NewLogger(node, n.LogFile, env.Stderr)
		if err != nil {
			fmt.Fprintf(env.Stderr, "zhost run: %v\n", err)
			return ExitFailure
		}
		defer closeLog()
		ready := func(addr net.Addr) {
			// Only a node run by hand says where to go; under the
			// supervisor (JSON logs) the supervisor says it once for all.
			if os.Getenv(host.EnvLogJSON) != "" {
				return
			}
			if n.Kind == hcl.KindBalancer || (n.Kind == hcl.KindClient && len(cfg.Balancers) == 0) {
				fmt.Fprintf(env.Stdout, "zhost: node %s is up on %s; point a browser at %s\n", node, addr, host.NodeBrowserURL(cfg, node))
			}
		}
		if err := host.RunNode(ctx, cfg, node, host.NodeOptions{Logger: log, Exe: exe, Ready: ready}); err != nil {
			log.Error("node failed", "error", err)
			return ExitCrash
		}
		return ExitOK
	}
	var children []host.Child
	for _, n := range cfg.Nodes() {
		if machine != "" && n.Machine != machine {
			continue
		}
		listen := n.Listen
		children = append(children, host.Child{
			Name: n.Name,
			Args: []string{"run", "--node", n.Name, file},
			Env:  []string{host.EnvLogJSON + "=1"},
			Ready: func(ctx context.Context) error {
				d := net.Dialer{Timeout: 200 * time.Millisecond}
				c, err := d.DialContext(ctx, "tcp", listen)
				if err == nil {
					c.Close()
				}
				return err
			},
		})
	}
	if len(children) == 0 {
		fmt.Fprintf(env.Stderr, "zhost run: no nodes to run in %s\n", file)
		return ExitUsage
	}
	log, closeLog, err := host.NewLogger("zhost", "", env.Stderr)
	if err != nil {
		fmt.Fprintf(env.Stderr, "zhost run: %v\n", err)
		return ExitFailure
	}
	defer closeLog()
	sup := host.NewSupervisor(host.SupervisorOptions{Exe: exe, Children: children, Logger: log, StopTimeout: stopTimeout(cfg)})
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	go func() {
		// Tell the operator where to go once every node answers.
		for _, c := range children {
			if pollCtx(ctx, 30*time.Second, c.Ready) != nil {
				return
			}
		}
		if u := host.BrowserURL(cfg); u != "" {
			fmt.Fprintf(env.Stdout, "zhost: cluster is up; point a browser at %s\n", u)
		}
	}()
	if err := <-done; err != nil {
		if errors.Is(err, host.ErrAllFailed) {
			log.Error("cluster stopped: every node kept crashing", "error", err)
		} else {
			log.Error("cluster failed to start", "error", err)
		}
		return ExitFailure
	}
	log.Info("cluster stopped")
	return ExitOK
}

func pollCtx(ctx context.Context, limit time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopTimeout is how long the supervisor lets a node stop after SIGTERM
// before it kills it: longer than any node's own graceful bound (a
// balancer's drain_timeout, the other nodes' default ShutdownTimeout of
// 20s), so that a drain the config allows is never cut short by a kill.
func stopTimeout(cfg *hcl.Config) time.Duration {
	const margin = 5 * time.Second
	d := 20*time.Second + margin
	for _, b := range cfg.Balancers {
		d = max(d, b.DrainTimeout+margin)
	}
	return d
}
