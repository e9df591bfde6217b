// Package busypoll makes a connection's reads poll the socket for a short
// while before parking in the runtime's network poller.
//
// On a machine whose idle CPUs halt (most virtual machines), a process
// parked in epoll_wait is woken by an interrupt to a halted vCPU, which
// costs tens of microseconds per message. A reader that expects its reply
// within microseconds can instead keep asking the socket for data,
// yielding its P between attempts, and park only when the window passes.
// This is the user-space counterpart of Linux's busy_read sysctl (which
// loopback sockets do not honour). It trades CPU for latency: a read that
// finds no data burns at most the window before it parks.
package busypoll

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
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
		var deadline time.Time
		for {
			n, rerr = syscall.Read(int(fd), p)
			switch {
			case rerr == syscall.EINTR:
				continue
			case rerr != syscall.EAGAIN:
				return true
			case polled && deadline.IsZero():
				// Woken by the poller with nothing to read: wait again.
				return false
			case deadline.IsZero():
				polled = true
				deadline = time.Now().Add(c.window)
			case time.Now().After(deadline):
				return false
			}
			runtime.Gosched() // let this P's other goroutines run
		}
	})
	switch {
	case err != nil:
		return 0, c.opError(err)
	case rerr != nil:
		return 0, c.opError(os.NewSyscallError("read", rerr))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
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
