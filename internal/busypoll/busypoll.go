// Package busypoll makes a connection's reads poll the socket for a short
// while before parking in the runtime's network poller.
//
// On a machine whose idle CPUs halt (most virtual machines), a process
// parked in epoll_wait is woken by an interrupt to a halted vCPU, which
// costs tens of microseconds per message. A reader that expects its reply
// within microseconds can instead keep asking the socket for data and
// park only when the window passes. This is the user-space counterpart of
// Linux's busy_read sysctl (which loopback sockets do not honour). It
// trades CPU for latency: a read that finds no data burns at most the
// window before it parks, and it only pays where the process has a CPU to
// spare (on an overloaded machine the polling takes CPU the work needs).
//
// How it shares the Go scheduler. A read that starts polling first yields
// once, so the goroutines its last message readied (the caller waiting for
// a reply) run before it; then it polls without yielding, holding its P.
// A polling read that yielded on every attempt would sit in the run queue
// each time the scheduler looked, and the scheduler polls the network only
// when its queues are empty: reads parked in the poller (other
// connections, the listener) then saw their data only at the runtime's
// background poll, milliseconds later. For the same reason at most
// GOMAXPROCS-1 reads of the process poll at once, so one P is always free
// to poll the network; with GOMAXPROCS 1 no read polls.
//
// The window adapts, per connection, to what polling buys, as the guest
// haltpoll governor of Linux adapts its poll window to how long its CPU
// stays idle. The configured window is the most a read polls. A read that
// finds its data while polling, or that had to park but got its data
// within the most (so a full poll would have paid), sets the window to the
// most; a read that polled in vain and waited longer than the most halves
// the window, down to closed. A closed window costs nothing: the read
// parks at once, and only every probeEvery-th read that has to wait polls
// for the most again, to notice when the traffic turns quick. So a
// connection whose replies come in microseconds polls, and one that waits
// for fsyncs, for users or for nothing stops polling after a few reads,
// and the CPU the polling burns stays a small part of the time it waits.
// A poll whose thread loses its CPU between two attempts (the kernel ran
// something else there: more threads want to run than there are CPUs)
// closes the window at once, so polling gives way where it would take CPU
// from the work it waits for.
package busypoll

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// Default is the window of cluster.hcl's busy_poll when a block does not
// set it (hcl/spec.go states it again, as the documented default).
const Default = 50 * time.Microsecond

// Wrap returns c with reads that poll for up to window before they park,
// the window adapting to the traffic (see the package comment).
// A window of zero or less, or a connection without a file descriptor,
// returns c unchanged.
func Wrap(c net.Conn, window time.Duration) net.Conn {
	if window <= 0 {
		return c
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	cn := &conn{Conn: c, rc: rc, max: window, gap: preemptGap}
	cn.window.Store(int64(window))
	return cn
}

// probeEvery is how often a read polls although the window is closed:
// every probeEvery-th read that has to wait polls for the most, so that a
// connection whose traffic turned quick opens its window again.
const probeEvery = 16

type conn struct {
	net.Conn
	rc syscall.RawConn
	// max is the configured window, the most a read polls; window is
	// the current one (nanoseconds, 0 to max), adapted after every read
	// that had to wait (see next); waits counts the reads that had to
	// wait while it was closed, for the probes.
	max    time.Duration
	window atomic.Int64
	waits  atomic.Uint32
	// gap is preemptGap (tests change it).
	gap time.Duration
	// The poll loop runs outside the runtime's poller, which sees a
	// deadline or a Close only once the loop gives way to it: the loop
	// checks these to give way as soon as a plain conn's read would
	// return.
	readDeadline atomic.Int64 // Unix nanoseconds; 0: none
	closed       atomic.Bool
}

// Read reads like net.Conn's Read, polling first.
func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n    int
		rerr error
		// The first empty read starts the wait (start); window is how
		// long this read polls (0: it parks at once); paid is set when
		// its data came while it polled, contended when it stopped
		// polling because its thread lost the CPU; adapt is false when
		// the read found no free polling slot, which says nothing of
		// the traffic.
		start     time.Time
		state     time.Duration // the conn's window when the wait began
		window    time.Duration
		paid      bool
		contended bool
		adapt     = true
	)
	err := c.rc.Read(func(fd uintptr) bool {
		var until, last time.Time
		for {
			n, rerr = syscall.Read(int(fd), p)
			switch {
			case rerr == syscall.EINTR:
				continue
			case rerr != syscall.EAGAIN:
				if !until.IsZero() {
					release()
					paid = true
				}
				return true
			case !start.IsZero() && until.IsZero():
				// Woken by the poller with nothing to read, or not
				// polling: wait in the poller.
				return false
			case start.IsZero():
				start = time.Now()
				state = time.Duration(c.window.Load())
				if window = c.pollWindow(state); window <= 0 {
					return false
				}
				if !acquire() {
					adapt = false
					return false // every P but one polls already
				}
				until = start.Add(window)
				// Let what the last message readied run first, then
				// poll without yielding (see the package comment).
				runtime.Gosched()
				last = time.Now()
			default:
				now := time.Now()
				if now.Sub(last) > c.gap {
					// The thread lost its CPU between two attempts:
					// something else wants the CPUs, and polling takes
					// from it.
					contended = true
					release()
					return false
				}
				last = now
				if c.giveWay(now, until) {
					// The poller reports a deadline or a Close as it
					// would on a plain conn.
					release()
					return false
				}
			}
		}
	})
	if !start.IsZero() && adapt {
		c.window.Store(int64(next(c.max, state, paid, contended, time.Since(start))))
	}
	var rawErr *net.OpError
	switch {
	case errors.As(err, &rawErr):
		// RawConn.Read's own "raw-read" error: report its cause as
		// Read's, as a plain conn does.
		return 0, c.opError(rawErr.Err)
	case err != nil:
		return 0, c.opError(err)
	case rerr != nil:
		return 0, c.opError(os.NewSyscallError("read", rerr))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// pollWindow returns how long a read that has to wait polls, given the
// conn's window (state): the window, or while it is closed the most on
// every probeEvery-th wait.
func (c *conn) pollWindow(state time.Duration) time.Duration {
	if state > 0 {
		return state
	}
	if c.waits.Add(1)%probeEvery == 0 {
		return c.max
	}
	return 0
}

// preemptGap is how long a polling thread may go between two attempts
// before the poll takes it for a sign that the CPUs are contended (the
// kernel ran something else on this CPU in between); an attempt, a
// non-blocking read, takes about a microsecond.
const preemptGap = 20 * time.Microsecond

// next returns the conn's window after a read that had to wait: state was
// the window when the wait began, paid whether the data came while the
// read polled, contended whether the poll stopped because its thread lost
// the CPU, waited how long the read waited in all.
//
// A poll that lost its CPU closes the window: the polling takes CPU that
// other work waits for. Otherwise a wait that a poll of max catches (it
// did, or the data came within max) opens the window to max; a longer one
// halves it, and closes it below max/8. (Keeping a window closed by
// contention until a probe pays was tried: one process's commits and
// plugin calls alone cost the read miss half its gain; see
// docs/performance.md.)
func next(max, state time.Duration, paid, contended bool, waited time.Duration) time.Duration {
	switch {
	case contended:
		return 0
	case paid, waited <= max:
		return max
	case state <= 0:
		return 0
	}
	if state /= 2; state < max/8 {
		return 0
	}
	return state
}

// polling counts the reads polling now, in the whole process.
var polling atomic.Int32

// acquire takes one of the GOMAXPROCS-1 polling slots, so that one P is
// always left to run the scheduler's own network poll (see the package
// comment); false if none is free.
func acquire() bool {
	if int(polling.Add(1)) > runtime.GOMAXPROCS(0)-1 {
		polling.Add(-1)
		return false
	}
	return true
}

func release() { polling.Add(-1) }

// giveWay reports whether a poll whose window ends at until should stop
// at now: the window ended, the read deadline passed or the conn was
// closed.
func (c *conn) giveWay(now, until time.Time) bool {
	if c.closed.Load() {
		return true
	}
	if d := c.readDeadline.Load(); d != 0 && now.UnixNano() >= d {
		return true
	}
	return now.After(until)
}

// SetDeadline sets the deadlines as net.Conn's does, telling a read that
// is polling.
func (c *conn) SetDeadline(t time.Time) error {
	c.setReadDeadline(t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline as net.Conn's does, telling a
// read that is polling.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.setReadDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) setReadDeadline(t time.Time) {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	c.readDeadline.Store(d)
}

// Close closes the connection as net.Conn's does, telling a read that is
// polling.
func (c *conn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// CloseWrite half-closes the connection like *net.TCPConn's and
// *net.UnixConn's, which the wrapper would otherwise hide (the server
// half-closes after a last error frame so that the client reads it and
// then a clean end of stream).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return &net.OpError{Op: "close", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errors.ErrUnsupported}
}

// opError wraps err as net.Conn's Read does (net.ErrClosed and
// os.ErrDeadlineExceeded stay visible to errors.Is).
func (c *conn) opError(err error) error {
	return &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// FromEnv reads a window from the environment variable name ("50us");
// unset or malformed is zero.
func FromEnv(name string) time.Duration {
	d, err := time.ParseDuration(os.Getenv(name))
	if err != nil || d < 0 {
		return 0
	}
	return d
}
