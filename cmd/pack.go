package zhostcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/storage"
)

func init() {
	var (
		addr, config, partition string
		days                    float64
		before                  string
		timeout                 time.Duration
	)
	RegisterCommand(&Command{
		Name:  "pack",
		Usage: "[-server ADDR | -config FILE] [-partition NAME] [-days N | -before TIME]",
		Short: "pack a partition on a running server: drop old history and unreachable objects",
		Long: `Pack asks the storage server to pack one partition: revisions that were
not current at the pack time, and objects no longer reachable from the
root, are removed. Readers and committers keep working while it runs.
Partitions whose storage keeps no history (packless) need no packing and
answer that they do not support it.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "server", "", "storage server `ADDR` (host:port)")
			fs.StringVar(&config, "config", "", "read the server address from cluster.hcl `FILE`")
			fs.StringVar(&partition, "partition", "main", "partition `NAME` to pack")
			fs.Float64Var(&days, "days", 0, "keep `N` days of history (default: keep none)")
			fs.StringVar(&before, "before", "", "pack to this `TIME` (RFC 3339) instead of -days")
			fs.DurationVar(&timeout, "timeout", time.Hour, "give up after `DURATION`")
		},
		Run: func(env *Env, fs *flag.FlagSet, args []string) int {
			if len(args) != 0 {
				fs.Usage()
				return ExitUsage
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if config != "" {
				cfg, code := loadConfig(ctx, env, "pack", config)
				if cfg == nil {
					return code
				}
				if cfg.Server == nil {
					fmt.Fprintf(env.Stderr, "zhost pack: %s declares no server\n", config)
					return ExitUsage
				}
				addr = cfg.Server.Advertise
			}
			if addr == "" {
				fmt.Fprintln(env.Stderr, "zhost pack: give -server ADDR or -config FILE")
				return ExitUsage
			}
			// NaN fails both comparisons; beyond 100000 days the
			// duration would overflow.
			if !(days >= 0 && days <= 100000) {
				fmt.Fprintf(env.Stderr, "zhost pack: -days %v: want a number of days from 0 to 100000\n", days)
				return ExitUsage
			}
			at := time.Now().Add(-time.Duration(days * float64(24*time.Hour)))
			if before != "" {
				t, err := time.Parse(time.RFC3339, before)
				if err != nil {
					fmt.Fprintf(env.Stderr, "zhost pack: -before: %v\n", err)
					return ExitUsage
				}
				at = t
			}
			c, err := client.Open(ctx, client.Options{Addr: addr, Partition: partition, Name: "zhost-pack", CacheSize: -1})
			if err != nil {
				fmt.Fprintf(env.Stderr, "zhost pack: connect to %s: %v\n", addr, err)
				return ExitFailure
			}
			defer c.Close()
			start := time.Now()
			if err := c.Pack(ctx, storage.TidAt(at), nil); err != nil {
				if errors.Is(err, storage.ErrNotSupported) {
					fmt.Fprintf(env.Stderr, "zhost pack: partition %q keeps no history and needs no packing\n", partition)
					return ExitFailure
				}
				fmt.Fprintf(env.Stderr, "zhost pack: pack %q: %v\n", partition, err)
				return ExitFailure
			}
			fmt.Fprintf(env.Stdout, "packed partition %q to %s in %s\n", partition, at.UTC().Format(time.RFC3339), time.Since(start).Round(time.Millisecond))
			return ExitOK
		},
	})
}
