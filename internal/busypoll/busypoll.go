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

// Wrap returns c with reads that poll for up to window before they park.
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
	return &conn{Conn: c, rc: rc, window: window}
}

type conn struct {
	net.Conn
	rc     syscall.RawConn
	window time.Duration
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
		n      int
		rerr   error
		polled bool
	)
	err := c.rc.Read(func(fd uintptr) bool {
		var until time.Time
		for {
			n, rerr = syscall.Read(int(fd), p)
			switch {
			case rerr == syscall.EINTR:
				continue
			case rerr != syscall.EAGAIN:
				if !until.IsZero() {
					release()
				}
				return true
			case polled && until.IsZero():
				// Woken by the poller with nothing to read: wait again.
				return false
			case until.IsZero():
				polled = true
				if !acquire() {
					return false // every P but one polls already
				}
				until = time.Now().Add(c.window)
				// Let what the last message readied run first, then
				// poll without yielding (see the package comment).
				runtime.Gosched()
			case c.giveWay(until):
				// The poller reports a deadline or a Close as it
				// would on a plain conn.
				release()
				return false
			}
		}
	})
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

// giveWay reports whether a poll whose window ends at until should stop:
// the window ended, the read deadline passed or the conn was closed.
func (c *conn) giveWay(until time.Time) bool {
	if c.closed.Load() {
		return true
	}
	now := time.Now()
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
