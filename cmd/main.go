package zhostcmd

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// Exit codes. A supervisor (systemd, the zhost run supervisor) should act on
// them as each comment says.
const (
	// ExitOK: success. Do not restart.
	ExitOK = 0
	// ExitFailure: the command ran and failed (an invalid config, a node
	// that could not start). Restarting without changing something will
	// fail the same way.
	ExitFailure = 1
	// ExitUsage: bad flags or arguments, or an unreadable file. Fix the
	// command line; never restart.
	ExitUsage = 2
	// ExitCrash: a node lost something it needs at run time (its server,
	// its storage). Restart with backoff.
	ExitCrash = 3
)

// Version is set at build time with -ldflags "-X github.com/zhostdb/zhost/cmd.Version=...".
var Version = "dev"

// Command is one verb of the command line.
type Command struct {
	// Name is the verb, "validate".
	Name string
	// Usage is the argument synopsis, "[-json] FILE".
	Usage string
	// Short is one line for `zhost --help`.
	Short string
	// Long is the rest of `zhost VERB --help`; the flags follow it.
	Long string
	// Hidden keeps the verb out of `zhost --help` (internal verbs such as
	// `plugin serve`).
	Hidden bool
	// Flags declares the verb's flags; nil means none.
	Flags func(fs *flag.FlagSet)
	// Run executes the verb with the flags parsed and the remaining
	// arguments; it returns an exit code.
	Run func(env *Env, fs *flag.FlagSet, args []string) int
}

// Env is what a command may touch of the outside world, so tests can run
// commands in-process.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Stdin  io.Reader
}

var commands = map[string]*Command{}

// RegisterCommand adds a verb. It panics on a duplicate name: that is a
// programming error caught by any test, never a runtime input.
func RegisterCommand(c *Command) {
	if _, dup := commands[c.Name]; dup {
		panic("zhostcmd: duplicate command " + c.Name)
	}
	commands[c.Name] = c
}

// Main runs the command line with os.Std* and returns the exit code.
func Main(args []string) int {
	return Run(&Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin}, args)
}

// Run runs the command line against env.
func Run(env *Env, args []string) int {
	if len(args) == 0 {
		usage(env.Stderr)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return Run(env, []string{args[1], "--help"})
		}
		usage(env.Stdout)
		return ExitOK
	case "-v", "-version", "--version":
		args = []string{"version"}
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "zhost: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return ExitUsage
	}
	fs := flag.NewFlagSet("zhost "+c.Name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	if c.Flags != nil {
		c.Flags(fs)
	}
	// -h/--help is answered on stdout with exit 0; any other flag error
	// prints the usage on stderr with exit 2. The flag package calls
	// Usage itself on both, so Usage decides by what it is asked for.
	helpWanted := false
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			helpWanted = true
		}
	}
	fs.Usage = func() {
		if helpWanted {
			commandUsage(env.Stdout, c, fs)
			return
		}
		commandUsage(env.Stderr, c, fs)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return ExitOK
		}
		return ExitUsage
	}
	return c.Run(env, fs, fs.Args())
}

func usage(w io.Writer) {
	fmt.Fprint(w, `zhost runs a clustered object database with shared session state from one
HCL file: a storage server with its partitions, app nodes with RAM caches,
and a load balancer.

Usage:
  zhost COMMAND [flags] [args]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.Hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Short)
	}
	fmt.Fprint(w, "\nRun 'zhost COMMAND --help' for a command's flags.\n")
}

func commandUsage(w io.Writer, c *Command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: zhost %s %s\n\n%s\n", c.Name, c.Usage, c.Short)
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// BuildVersion returns the version string: Version, plus the module
// version and VCS revision when the binary carries them.
func BuildVersion() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return v
}

func init() {
	RegisterCommand(&Command{
		Name:  "version",
		Short: "print the zhost version",
		Run: func(env *Env, _ *flag.FlagSet, _ []string) int {
			fmt.Fprintf(env.Stdout, "zhost %s\n", BuildVersion())
			return ExitOK
		},
	})
}
