package pluginhost

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
)

// procRunner starts a plugin process for go-plugin
// (plugin.ClientConfig.RunnerFunc) as go-plugin's own command runner does,
// with two differences:
//
//   - the sha256 of the binary, when the config gives one, is checked by
//     the runner just before the process starts (go-plugin's SecureConfig
//     only applies to its own runner);
//   - the plugin's stderr reaches go-plugin's log parser through
//     logLineFilter. go-plugin turns every JSON line a plugin writes on
//     stderr into a host log entry, and asserts that "@message", "@level"
//     and "@timestamp" are strings: a plugin (or a library inside it)
//     that wrote {"@message": 5} would panic the host. The filter
//     rewrites such values as strings, so any output is only ever text in
//     the log.
type procRunner struct {
	cmd    *exec.Cmd
	path   string
	sha256 []byte // nil: no check
	logger hclog.Logger
	stdout io.ReadCloser
	stderr io.ReadCloser
	pid    int
}

// newRunnerFunc returns a plugin.ClientConfig.RunnerFunc that runs cmd.
// go-plugin hands the RunnerFunc a command it prepared (environment with
// the handshake variables, stdin); its environment is appended to cmd's.
func newRunnerFunc(cmd *exec.Cmd, sum []byte) func(hclog.Logger, *exec.Cmd, string) (runner.Runner, error) {
	return func(logger hclog.Logger, prepared *exec.Cmd, _ string) (runner.Runner, error) {
		cmd.Env = append(cmd.Env, prepared.Env...)
		cmd.Stdin = prepared.Stdin
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("plugin stdout: %w", err)
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return nil, fmt.Errorf("plugin stderr: %w", err)
		}
		return &procRunner{
			cmd:    cmd,
			path:   cmd.Path,
			sha256: sum,
			logger: logger,
			stdout: stdout,
			stderr: &logLineFilter{r: newLogReader(stderr), c: stderr},
		}, nil
	}
}

// Start checks the binary's checksum, if one is configured, and starts
// the process. A mismatch is plugin.ErrChecksumsDoNotMatch, as go-plugin
// reports it.
func (r *procRunner) Start(context.Context) error {
	if r.sha256 != nil {
		ok, err := (&plugin.SecureConfig{Checksum: r.sha256, Hash: sha256.New()}).Check(r.path)
		if err != nil {
			return fmt.Errorf("checksum of %s: %w", r.path, err)
		}
		if !ok {
			return plugin.ErrChecksumsDoNotMatch
		}
	}
	r.logger.Debug("starting plugin", "path", r.path, "args", r.cmd.Args)
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.pid = r.cmd.Process.Pid
	r.logger.Debug("plugin started", "path", r.path, "pid", r.pid)
	return nil
}

// Wait waits for the process to exit (after its pipes are read to the end).
func (r *procRunner) Wait(context.Context) error { return r.cmd.Wait() }

// Kill kills the process; killing one that is gone is not an error.
func (r *procRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *procRunner) Name() string          { return r.path }

// ID is the process id, "" before Start (go-plugin then has nothing to kill).
func (r *procRunner) ID() string {
	if r.pid == 0 {
		return ""
	}
	return strconv.Itoa(r.pid)
}

// Diagnose explains a failed handshake for go-plugin's error.
func (r *procRunner) Diagnose(context.Context) string {
	return fmt.Sprintf("%s started but did not complete the go-plugin handshake: is it a zhost plugin built for this system with plugins/sdk?", r.path)
}

// PluginToHost and HostToPlugin: host and plugin share one machine and
// one file system, so addresses need no translation.
func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// maxLogLine is the longest stderr line the filter inspects. go-plugin
// reads at most 64 KiB of a line (ClientConfig.PluginLogBufferSize's
// default) and logs longer ones as plain text without parsing them, so
// longer lines pass through untouched.
const maxLogLine = 64 << 10

func newLogReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, maxLogLine) }

// logLineFilter passes a plugin's stderr through, line by line, and
// rewrites a JSON line whose "@message", "@level" or "@timestamp" is not
// a string so that it is (its JSON text becomes the string). Every other
// byte passes unchanged.
type logLineFilter struct {
	r       *bufio.Reader
	c       io.Closer
	pending []byte
	long    bool // in the middle of a line longer than the buffer
	err     error
}

func (f *logLineFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		line, err := f.r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			f.pending = append(f.pending[:0], line...)
			f.long = true
			continue
		case err != nil:
			f.err = err
		}
		if f.long {
			// The end of a long line: not inspected.
			f.pending = append(f.pending[:0], line...)
			f.long = err != nil
			continue
		}
		f.pending = append(f.pending[:0], safeLogLine(line)...)
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

func (f *logLineFilter) Close() error { return f.c.Close() }

// hclogKeys are the keys go-plugin reads as strings from a JSON log line.
var hclogKeys = []string{"@message", "@level", "@timestamp"}

// safeLogLine returns line, or, if it is a JSON object (whitespace before
// it allowed) with a non-string value under one of hclogKeys, the object
// re-encoded with those values as strings.
func safeLogLine(line []byte) []byte {
	body := bytes.TrimRight(line, "\r\n")
	// JSON allows whitespace before the object, and go-plugin's parser
	// (json.Unmarshal of the line) accepts it.
	if obj := bytes.TrimLeft(body, " \t\r\n"); len(obj) == 0 || obj[0] != '{' {
		return line
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return line // not JSON: go-plugin logs it as text
	}
	changed := false
	for _, k := range hclogKeys {
		v, ok := obj[k]
		if !ok || (len(v) > 0 && v[0] == '"') {
			continue
		}
		s, err := json.Marshal(string(v))
		if err != nil {
			continue
		}
		obj[k] = s
		changed = true
	}
	if !changed {
		return line
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return line
	}
	return append(out, line[len(body):]...)
}

var _ runner.Runner = (*procRunner)(nil)
