// Package host runs the nodes of a zhost cluster: layer 9, the top of the
// library, just under the command line (cmd). It reads a checked config
// (package hcl), starts plugins (host/pluginhost), opens storages and
// binds them to partitions, and runs one node in this process with
// RunNode: the storage server (host/server), an app node (host/client,
// host/db, host/session, host/app) or the balancer (host/balancer). Each
// node writes its pid file while it runs and logs through hclog under its
// node name (NewLogger, which also appends to the node's log_file).
//
// Supervisor runs every node of a file as its own child process (`zhost
// run FILE`): it relays each child's JSON log under the child's name,
// restarts a crashed child with capped exponential backoff, marks one that
// keeps crashing as failed, and stops the children in reverse order on
// shutdown. The children get SIGTERM from the kernel if the supervisor
// dies, so it leaves no orphans.
//
// Running one node, as `zhost run --node NAME FILE` does:
//
//	cfg, diags := host.LoadConfig(ctx, "cluster.hcl", nil)
//	if diags.HasErrors() { ... }
//	log, closeLog, err := host.NewLogger("app1", cfg.Node("app1").LogFile, os.Stderr)
//	if err != nil { ... }
//	defer closeLog()
//	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
//	defer stop()
//	err = host.RunNode(ctx, cfg, "app1", host.NodeOptions{Logger: log})
//
// RunNode blocks until ctx ends, then stops gracefully (a balancer drains,
// an app node finishes its requests, the server finishes or aborts open
// commits) and returns nil; an error means the node could not start or
// failed while running. Nothing in this package panics on a bad config:
// every problem is an error naming the node and what failed.
package host
