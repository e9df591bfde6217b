package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

type state int

const (
	stateStopped    state = iota // never started (or stopped on purpose)
	stateRunning                 // process up, handshake done
	stateRestarting              // crashed; waiting for the backoff to pass
	stateFailed                  // crashed MaxCrashes times in a row
	stateClosed                  // the manager was closed
)

func (s state) String() string {
	return [...]string{"stopped", "running", "restarting", "failed", "closed"}[s]
}

// Plugin is one plugin the host may run, with its supervision state. At
// most one process per plugin runs at a time. All methods are safe for
// concurrent use.
type Plugin struct {
	m      *Manager
	spec   Spec
	logger hclog.Logger

	// startSem serializes starts; waiters select on it with their ctx.
	startSem chan struct{}

	mu        sync.Mutex
	state     state
	gen       uint64 // bumped at every successful start
	proc      *plugin.Client
	pid       int // of proc's process
	conn      *sdk.Client
	desc      sdk.Description
	path      string
	started   time.Time
	crashes   int // crashes in a row (reset after StableAfter up)
	restarts  int
	nextStart time.Time
	lastErr   error
	// hungWhy is set when the running process was killed for leaving a
	// call unanswered (see hung); it is the crash's reason.
	hungWhy string
	// hungSince is when the call hung was killed for began: the plugin
	// was not answering from then on, so its stable uptime ends there.
	hungSince time.Time
	// A plugin that never started: failed attempts so far, and when the
	// next may be made (calls before then get the last error at once).
	startFailures int
	retryAt       time.Time
}

func newPlugin(m *Manager, spec Spec) *Plugin {
	return &Plugin{
		m:        m,
		spec:     spec,
		logger:   m.opts.Logger.Named(spec.Name),
		startSem: make(chan struct{}, 1),
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return p.spec.Name }

// Spec returns the plugin's spec.
func (p *Plugin) Spec() Spec { return p.spec }

// Describe starts the plugin if needed and returns what it exports.
func (p *Plugin) Describe(ctx context.Context) (sdk.Description, error) {
	if _, _, err := p.client(ctx); err != nil {
		return sdk.Description{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.desc, nil
}

// Status returns a snapshot of the plugin's state.
func (p *Plugin) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Name: p.spec.Name, Path: p.path, State: p.state.String(), Restarts: p.restarts}
	if p.path == "" {
		st.Path, _ = p.m.resolvePath(p.spec)
	}
	if p.state == stateRunning && p.proc != nil {
		st.Pid = p.pid
	}
	if p.lastErr != nil {
		st.LastError = p.lastErr.Error()
	}
	return st
}

// client returns a live connection to the plugin and its generation,
// starting the plugin if it is not running. While a crashed plugin waits
// out its backoff, client waits too (bounded by ctx and MaxBackoff). A
// failed plugin fails at once.
func (p *Plugin) client(ctx context.Context) (*sdk.Client, uint64, error) {
	for attempt := 0; ; attempt++ {
		p.mu.Lock()
		switch p.state {
		case stateClosed:
			p.mu.Unlock()
			return nil, 0, fmt.Errorf("%s: %w", p.spec.label(), ErrClosed)
		case stateFailed:
			err := p.lastErr
			p.mu.Unlock()
			return nil, 0, fmt.Errorf("%s: crashed %d times in a row, not restarted (last: %v): %w", p.spec.label(), p.m.opts.MaxCrashes, err, errors.Join(ErrFailed, sdk.ErrPluginUnavailable))
		case stateRunning:
			if p.conn.Alive() {
				c, gen := p.conn, p.gen
				p.mu.Unlock()
				return c, gen, nil
			}
			// Exited but the watcher has not seen it yet.
			p.crashedLocked(p.gen, "process exited")
			p.mu.Unlock()
			continue
		case stateRestarting:
			wait := time.Until(p.nextStart)
			p.mu.Unlock()
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil, 0, fmt.Errorf("%s: restarting after a crash: %w", p.spec.label(), errors.Join(ctx.Err(), sdk.ErrPluginUnavailable))
				case <-p.m.closing:
					t.Stop()
					return nil, 0, fmt.Errorf("%s: %w", p.spec.label(), ErrClosed)
				}
			}
		default:
			if p.lastErr != nil && time.Now().Before(p.retryAt) {
				err := p.lastErr
				p.mu.Unlock()
				return nil, 0, err
			}
			p.mu.Unlock()
		}
		if attempt > 2 {
			return nil, 0, fmt.Errorf("%s: could not start: %w", p.spec.label(), sdk.ErrPluginUnavailable)
		}
		if err := p.start(ctx); err != nil {
			return nil, 0, err
		}
	}
}

// start starts the process unless another caller did meanwhile.
func (p *Plugin) start(ctx context.Context) error {
	select {
	case p.startSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for the plugin to start: %w", p.spec.label(), ctx.Err())
	}
	defer func() { <-p.startSem }()

	p.mu.Lock()
	switch p.state {
	case stateRunning, stateClosed, stateFailed:
		p.mu.Unlock()
		return nil // someone else decided; client loops
	case stateRestarting:
		if time.Now().Before(p.nextStart) {
			p.mu.Unlock()
			return nil
		}
	}
	restart := p.state == stateRestarting
	p.mu.Unlock()

	l, err := p.launch(ctx)

	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.lastErr = err
		if restart {
			// A failed restart counts as a crash, so a plugin that can no
			// longer start ends up failed rather than retried forever.
			p.crashedLocked(p.gen, err.Error())
		} else {
			// A plugin that cannot start (bad checksum, no handshake) is
			// not tried again by every call: later calls within the
			// backoff get this error at once.
			p.startFailures++
			p.retryAt = time.Now().Add(p.backoff(p.startFailures))
		}
		return err
	}
	p.startFailures, p.retryAt = 0, time.Time{}
	if p.state == stateClosed {
		go func() {
			l.proc.Kill()
			killGroup(l.pid)
		}()
		return fmt.Errorf("%s: %w", p.spec.label(), ErrClosed)
	}
	p.gen++
	p.proc, p.pid, p.conn, p.desc, p.path = l.proc, l.pid, l.conn, l.desc, l.path
	p.hungWhy = ""
	p.state = stateRunning
	p.started = time.Now()
	if restart {
		p.restarts++
		p.logger.Info("plugin restarted", "restarts", p.restarts, "version", l.desc.Version)
	} else {
		p.logger.Debug("plugin started", "path", l.path, "version", l.desc.Version)
	}
	gen := p.gen
	p.m.wg.Add(1)
	go p.watch(gen, l.conn)
	return nil
}

// launched is a plugin process that completed its handshake.
type launched struct {
	proc *plugin.Client
	pid  int
	conn *sdk.Client
	desc sdk.Description
	path string
}

// launch starts one process and completes the handshake and Describe.
func (p *Plugin) launch(ctx context.Context) (*launched, error) {
	label := p.spec.label()
	path, err := p.m.resolvePath(p.spec)
	if err != nil {
		return nil, err
	}
	args := p.spec.Args
	if p.spec.Name == BuiltinName {
		args = []string{"plugin", "serve", BuiltinName}
	}
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = pluginSysProcAttr()
	// The host's environment, then what the host sets for the plugin,
	// which wins over a variable of the same name there (the last one
	// counts); go-plugin's runner appends only its handshake variables
	// (SkipHostEnv below).
	cmd.Env = os.Environ()
	for k, v := range p.spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env,
		sdk.EnvLogLevel+"="+levelName(p.m.opts.Logger.GetLevel()),
		sdk.EnvBusyPoll+"="+max(p.m.opts.BusyPoll, 0).String())

	var sum []byte // checked by the runner before every start
	if p.spec.SHA256 != "" {
		if sum, err = parseSHA256(p.spec.SHA256); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
	}

	proc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.ClientPluginSets(p.spec.Name),
		RunnerFunc:       newRunnerFunc(cmd, sum),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           pluginLogger{p.logger},
		SkipHostEnv:      true,
		StartTimeout:     p.m.opts.StartTimeout,
		GRPCDialOptions:  sdk.GRPCDialOptionsPoll(p.m.opts.BusyPoll),
		SyncStdout:       stdoutLogger{p.logger},
		SyncStderr:       stdoutLogger{p.logger},
	})
	fail := func(err error) (*launched, error) {
		if cmd.Process != nil {
			killGroup(cmd.Process.Pid)
		}
		proc.Kill()
		return nil, err
	}
	rpc, err := proc.Client()
	if err != nil {
		return fail(p.startError(path, err))
	}
	raw, err := rpc.Dispense(sdk.PluginKey)
	if err != nil {
		return fail(fmt.Errorf("%s: %s: dispense: %w", label, path, errors.Join(ErrHandshake, err)))
	}
	conn, ok := raw.(*sdk.Client)
	if !ok {
		return fail(fmt.Errorf("%s: %s: unexpected plugin client %T: %w", label, path, raw, ErrHandshake))
	}
	if p.m.opts.HangTimeout > 0 {
		pid := cmd.Process.Pid
		conn.SetHangWatch(p.m.opts.HangTimeout, func(op string, after time.Duration) { p.hung(proc, pid, op, after) })
	}
	dctx, cancel := context.WithTimeout(ctx, p.m.opts.StartTimeout)
	defer cancel()
	desc, err := conn.Describe(dctx)
	if err != nil {
		return fail(fmt.Errorf("%s: %s: describe: %w", label, path, errors.Join(ErrHandshake, err)))
	}
	cfg := p.spec.Config
	if cfg != nil && p.spec.Name != BuiltinName {
		// Settings as written (see Manager.OpenStorage) are decoded with
		// the schema the plugin declares.
		if cfg, err = desc.Config.Normalize(cfg, p.m.opts.BaseDir); err != nil {
			return fail(fmt.Errorf("%s: settings: %w", label, errors.Join(storage.ErrInvalid, err)))
		}
	}
	if len(cfg) > 0 {
		if err := conn.Configure(dctx, cfg); err != nil {
			return fail(fmt.Errorf("%s: %w", label, err))
		}
	}
	return &launched{proc: proc, pid: cmd.Process.Pid, conn: conn, desc: desc, path: path}, nil
}

// startError turns go-plugin's start errors into ones an operator can act
// on.
func (p *Plugin) startError(path string, err error) error {
	label := p.spec.label()
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		got, herr := fileSHA256(path)
		if herr != nil {
			return fmt.Errorf("%s: %s: sha256 check: %w", label, path, errors.Join(ErrChecksum, herr))
		}
		return fmt.Errorf("%s: %s has sha256 %s, the config says %s: %w", label, path, got, strings.ToLower(p.spec.SHA256), ErrChecksum)
	case strings.Contains(msg, "checksum"):
		return fmt.Errorf("%s: %s: %w", label, path, errors.Join(ErrChecksum, err))
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("%s: %s did not complete the plugin handshake within %s: %w", label, path, p.m.opts.StartTimeout, ErrHandshake)
	case strings.Contains(msg, "exited before we could connect"), strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		return fmt.Errorf("%s: %s exited before completing the plugin handshake (its stderr is in the log under the plugin's name): %w", label, path, ErrHandshake)
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		first, _, _ := strings.Cut(strings.TrimPrefix(msg, "Unrecognized remote plugin message: "), "\n")
		return fmt.Errorf("%s: %s printed %q on stdout instead of the plugin handshake (is it a zhost plugin built with plugins/sdk? plugins must not write to stdout): %w", label, path, first, ErrHandshake)
	case strings.Contains(msg, "incompatible"):
		return fmt.Errorf("%s: %s: %w", label, path, errors.Join(ErrHandshake, err))
	default:
		var pe *os.PathError
		if errors.As(err, &pe) || errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%s: %s: %w", label, path, errors.Join(ErrBinaryNotFound, err))
		}
		return fmt.Errorf("%s: %s: start: %w", label, path, errors.Join(ErrHandshake, err))
	}
}

// hung kills the plugin process proc (pid), which left call op
// unanswered for after (see sdk.Client.SetHangWatch): go-plugin only
// notices a process that exits, so the host ends it, and the crash path
// (watch) runs as for any exit, the hang as the reason.
func (p *Plugin) hung(proc *plugin.Client, pid int, op string, after time.Duration) {
	why := fmt.Sprintf("hung: no answer to %s in %s", op, after)
	p.mu.Lock()
	if p.proc != proc || p.state != stateRunning || p.hungWhy != "" {
		// Gone already, or being killed for another call.
		p.mu.Unlock()
		return
	}
	p.hungWhy = why
	p.hungSince = time.Now().Add(-after)
	p.mu.Unlock()
	p.logger.Error(fmt.Sprintf("plugin hung: no answer to %s in %s; killing it", op, after), "call", op, "pid", pid)
	killGroup(pid)
}

// watch waits for the process of generation gen to exit and reports it.
func (p *Plugin) watch(gen uint64, conn *sdk.Client) {
	defer p.m.wg.Done()
	select {
	case <-conn.Done():
	case <-p.m.closing:
		return
	}
	p.mu.Lock()
	restart := p.crashedLocked(gen, "process exited")
	wait := time.Until(p.nextStart)
	p.mu.Unlock()
	if !restart {
		return
	}
	// Restart eagerly, so the plugin is back before the next call needs
	// it; client() callers wait for the same backoff.
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.m.closing:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.m.opts.StartTimeout+time.Second)
	defer cancel()
	if _, _, err := p.client(ctx); err != nil {
		p.logger.Error("plugin restart failed", "error", err)
	}
}

// crashedLocked records that generation gen's process is gone and picks
// what happens next. It reports whether a restart is scheduled. p.mu is
// held.
func (p *Plugin) crashedLocked(gen uint64, why string) bool {
	if p.gen != gen || p.state == stateClosed || p.state == stateFailed {
		return false
	}
	if p.state == stateRunning {
		up := time.Since(p.started)
		if p.hungWhy != "" {
			why = p.hungWhy // killed by hung
			// Time spent not answering is not stable uptime: a plugin
			// that hangs in every commit is not restarted forever.
			up = p.hungSince.Sub(p.started)
		}
		if up >= p.m.opts.StableAfter {
			p.crashes = 0
		}
		if p.proc != nil {
			go p.proc.Kill() // reap and release go-plugin's goroutines
		}
		p.lastErr = fmt.Errorf("%s: %s", p.spec.label(), why)
	}
	p.crashes++
	if p.crashes >= p.m.opts.MaxCrashes {
		p.state = stateFailed
		p.logger.Error("plugin keeps crashing; marked failed and not restarted", "crashes", p.crashes, "error", p.lastErr)
		return false
	}
	backoff := p.backoff(p.crashes)
	p.state = stateRestarting
	p.nextStart = time.Now().Add(backoff)
	p.logger.Error("plugin crashed; restarting", "crashes", p.crashes, "backoff", backoff, "reason", why)
	return true
}

// backoff is the wait after the n-th failure in a row: MinBackoff doubled
// n-1 times, at most MaxBackoff.
func (p *Plugin) backoff(n int) time.Duration {
	if n > 30 {
		return p.m.opts.MaxBackoff
	}
	b := p.m.opts.MinBackoff << (n - 1)
	if b > p.m.opts.MaxBackoff || b <= 0 {
		b = p.m.opts.MaxBackoff
	}
	return b
}

// stop ends the plugin process for good (Manager.Close).
func (p *Plugin) stop() {
	p.mu.Lock()
	proc, pid := p.proc, p.pid
	running := p.state == stateRunning
	p.state = stateClosed
	p.mu.Unlock()
	if proc != nil {
		proc.Kill()
		// Whatever the plugin started itself goes too.
		killGroup(pid)
		if running {
			p.logger.Debug("plugin stopped")
		}
	}
}

func parseSHA256(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("sha256 %q is not 64 hex digits: %w", s, ErrChecksum)
	}
	return b, nil
}

// fileSHA256 returns the hex sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileSHA256 returns the hex sha256 of a plugin binary, the value a
// `plugin` block's sha256 attribute takes.
func FileSHA256(path string) (string, error) { return fileSHA256(path) }

func levelName(l hclog.Level) string {
	switch l {
	case hclog.Trace:
		return "trace"
	case hclog.Debug:
		return "debug"
	case hclog.Warn:
		return "warn"
	case hclog.Error:
		return "error"
	case hclog.Off:
		return "off"
	default:
		return "info"
	}
}

// stdoutLogger receives what a plugin writes to its stdout or stderr
// after the handshake through go-plugin's stdio stream (plugins should
// log instead): each write is logged as a warning.
type stdoutLogger struct{ l hclog.Logger }

func (w stdoutLogger) Write(b []byte) (int, error) {
	if s := strings.TrimRight(string(b), "\n"); s != "" {
		w.l.Warn("plugin wrote to stdio", "output", s)
	}
	return len(b), nil
}
