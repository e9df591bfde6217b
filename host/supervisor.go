package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Child is one node the supervisor runs as its own process.
type Child struct {
	// Name is the node name; the child's log appears under it.
	Name string
	// Args are the arguments after the executable ("run", "--node", NAME, FILE).
	Args []string
	// Env is added to the supervisor's environment for this child.
	Env []string
	// Ready, if set, is polled after the child starts and before the next
	// child is started (for example: dial its listen address). Start order
	// is a courtesy, not a correctness need: every node reconnects.
	Ready func(ctx context.Context) error
}

// SupervisorOptions configures a Supervisor. Zero durations take the
// documented defaults.
type SupervisorOptions struct {
	// Exe is the executable to run for every child (the zhost binary).
	Exe string
	// Children are started in order and stopped in reverse order.
	Children []Child
	Logger   hclog.Logger
	// MinBackoff and MaxBackoff bound the wait before restarting a crashed
	// child; it doubles on each crash (default 250ms and 15s) and resets
	// once a child has run for StableAfter (default 30s).
	MinBackoff, MaxBackoff time.Duration
	StableAfter            time.Duration
	// MaxCrashes is how many crashes in a row (each before StableAfter)
	// mark a child failed; it is then not restarted (default 10).
	MaxCrashes int
	// StopTimeout is how long a child may take to exit after SIGTERM
	// before it is killed (default 20s).
	StopTimeout time.Duration
	// ReadyTimeout bounds each child's Ready poll (default 15s).
	ReadyTimeout time.Duration
}

// ErrAllFailed is returned by Supervisor.Run when every child has been
// marked failed (each crashed MaxCrashes times in a row): nothing is left
// to supervise, so the supervisor gives up instead of idling.
var ErrAllFailed = errors.New("every node failed")

// ChildState is what Status reports of one child.
type ChildState struct {
	Name     string
	PID      int // 0 when not running
	Restarts int
	Failed   bool
	LastExit string
}

// Supervisor runs the nodes of a cluster as child processes: it restarts
// a crashed child with capped exponential backoff, marks one that keeps
// crashing as failed instead of restarting it in a hot loop, relays each
// child's log under its node name, and on shutdown stops the children in
// reverse start order (balancer, then app nodes, then the server). The
// children run in their own process group, so a terminal's Ctrl-C reaches
// only the supervisor, which then stops them in order; and each child gets
// SIGTERM from the kernel if the supervisor itself dies (Linux
// Pdeathsig), so a crashed supervisor leaves no orphans.
type Supervisor struct {
	opts SupervisorOptions
	log  hclog.Logger

	mu     sync.Mutex
	states []*childState
	// failed receives one value per child marked failed.
	failed chan string
}

type childState struct {
	ChildState
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
}

// NewSupervisor returns a supervisor; nothing starts until Run.
func NewSupervisor(opts SupervisorOptions) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 15 * time.Second
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = 30 * time.Second
	}
	if opts.MaxCrashes <= 0 {
		opts.MaxCrashes = 10
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 20 * time.Second
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 15 * time.Second
	}
	s := &Supervisor{opts: opts, log: opts.Logger, failed: make(chan string, len(opts.Children))}
	for _, c := range opts.Children {
		s.states = append(s.states, &childState{ChildState: ChildState{Name: c.Name}})
	}
	return s
}

// Status returns a snapshot of every child's state.
func (s *Supervisor) Status() []ChildState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ChildState, len(s.states))
	for i, st := range s.states {
		out[i] = st.ChildState
	}
	return out
}

// Run starts the children and supervises them until ctx ends, then stops
// them in reverse order and returns. It returns an error if a child could
// not be started at all (a missing executable, say), or ErrAllFailed
// (wrapped) once every child has been marked failed; a cluster with some
// nodes failed and others running keeps running. Run is called once.
func (s *Supervisor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var startErr error
	for i, c := range s.opts.Children {
		if ctx.Err() != nil {
			break
		}
		st := s.states[i]
		if err := s.start(c, st); err != nil {
			startErr = err
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watch(runCtx, c, st)
		}()
		if c.Ready != nil {
			rctx, rcancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
			if err := pollReady(rctx, c.Ready); err != nil && ctx.Err() == nil {
				s.log.Warn("node not ready in time; starting the next one anyway", "node", c.Name, "error", err)
			}
			rcancel()
		}
	}
	if startErr == nil {
		startErr = s.waitStopOrAllFailed(ctx)
	}
	// Stop watchers from restarting, and wait until they have: a
	// watcher may be restarting a node that crashed just now, and the
	// process it starts must be the one stopped below, not left behind.
	// Then stop children in reverse order.
	cancel()
	wg.Wait()
	for i := len(s.states) - 1; i >= 0; i-- {
		s.stop(s.states[i])
	}
	return startErr
}

// waitStopOrAllFailed returns nil when ctx ends, or an ErrAllFailed error
// once every child has been marked failed.
func (s *Supervisor) waitStopOrAllFailed(ctx context.Context) error {
	var names []string
	for len(names) < len(s.states) {
		select {
		case <-ctx.Done():
			return nil
		case n := <-s.failed:
			names = append(names, n)
		}
	}
	return fmt.Errorf("%w: %v", ErrAllFailed, names)
}

func pollReady(ctx context.Context, ready func(context.Context) error) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}

func (s *Supervisor) start(c Child, st *childState) error {
	cmd := exec.Command(s.opts.Exe, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.SysProcAttr = childSysProcAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("start node %q: %w", c.Name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start node %q: %w", c.Name, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node %q: %w", c.Name, err)
	}
	l := s.log.Named(c.Name)
	var relays sync.WaitGroup
	relays.Add(2)
	go func() { defer relays.Done(); RelayLog(stderr, l) }()
	go func() { defer relays.Done(); RelayLog(stdout, l) }()
	done := make(chan struct{})
	s.mu.Lock()
	st.cmd, st.done, st.PID = cmd, done, cmd.Process.Pid
	s.mu.Unlock()
	go func() {
		relays.Wait() // Wait must not run before the pipes are drained.
		_ = cmd.Wait()
		close(done)
	}()
	s.log.Info("node started", "node", c.Name, "pid", cmd.Process.Pid)
	return nil
}

// watch restarts c whenever it exits, until ctx ends.
func (s *Supervisor) watch(ctx context.Context, c Child, st *childState) {
	backoff := s.opts.MinBackoff
	crashes := 0
	for {
		s.mu.Lock()
		cmd, done := st.cmd, st.done
		s.mu.Unlock()
		started := time.Now()
		select {
		case <-ctx.Done():
			return
		case <-done:
		}
		if ctx.Err() != nil {
			return
		}
		exit := describeExit(cmd)
		s.mu.Lock()
		st.PID, st.LastExit = 0, exit
		s.mu.Unlock()
		if time.Since(started) >= s.opts.StableAfter {
			backoff, crashes = s.opts.MinBackoff, 0
		}
		crashes++
		if crashes >= s.opts.MaxCrashes {
			s.log.Error("node keeps crashing; marked failed, not restarting", "node", c.Name, "exit", exit, "crashes", crashes)
			s.markFailed(st)
			return
		}
		s.log.Error("node exited; restarting", "node", c.Name, "exit", exit, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
		if err := s.start(c, st); err != nil {
			s.log.Error("restart failed; marked failed", "node", c.Name, "error", err)
			s.markFailed(st)
			return
		}
		s.mu.Lock()
		st.Restarts++
		s.mu.Unlock()
	}
}

func (s *Supervisor) markFailed(st *childState) {
	s.mu.Lock()
	st.Failed = true
	s.mu.Unlock()
	s.failed <- st.Name // buffered for every child; a child fails once
}

// stop sends SIGTERM, waits StopTimeout, then kills.
func (s *Supervisor) stop(st *childState) {
	s.mu.Lock()
	cmd, done := st.cmd, st.done
	s.mu.Unlock()
	if cmd == nil || done == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		s.log.Info("node stopped", "node", st.Name, "exit", describeExit(cmd))
	case <-time.After(s.opts.StopTimeout):
		s.log.Warn("node did not stop in time; killing it", "node", st.Name, "timeout", s.opts.StopTimeout)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		<-done
	}
	s.mu.Lock()
	st.PID = 0
	s.mu.Unlock()
}

func describeExit(cmd *exec.Cmd) string {
	if cmd == nil || cmd.ProcessState == nil {
		return "unknown"
	}
	return cmd.ProcessState.String()
}
