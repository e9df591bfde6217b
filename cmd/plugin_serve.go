package zhostcmd

import (
	"flag"
	"fmt"

	"github.com/zhostdb/zhost/plugins/builtin"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// `zhost plugin serve builtin` is how the host runs the built-in backends
// and mount functions as a plugin subprocess: it re-executes its own
// binary with this verb, so one binary is the whole install.
func init() {
	RegisterCommand(&Command{
		Name:   "plugin",
		Usage:  "serve builtin",
		Short:  "serve the built-in plugins to a zhost host (internal)",
		Hidden: true,
		Long: `The host starts this itself, as a go-plugin subprocess speaking gRPC
on a local socket. Run by hand it explains that and exits.`,
		Run: func(env *Env, _ *flag.FlagSet, args []string) int {
			if len(args) != 2 || args[0] != "serve" {
				fmt.Fprintln(env.Stderr, "usage: zhost plugin serve builtin")
				return ExitUsage
			}
			if args[1] != builtin.Name {
				fmt.Fprintf(env.Stderr, "zhost plugin serve: unknown plugin %q (this binary serves %q)\n", args[1], builtin.Name)
				return ExitUsage
			}
			// Serve exits the process itself when it cannot serve (no
			// handshake cookie); it returns when the host is done.
			sdk.Serve(builtin.Plugin(BuildVersion(), sdk.Logger()))
			return ExitOK
		},
	})
}
