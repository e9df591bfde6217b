package busypoll

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// pair returns the two ends of a TCP connection on 127.0.0.1, the first
// wrapped with window.
func pair(t *testing.T, window time.Duration) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return Wrap(a, window), b
}

func TestWrapLeavesConnAloneWhenOff(t *testing.T) {
	a, _ := pair(t, 0)
	if _, ok := a.(*conn); ok {
		t.Fatal("window 0 wrapped the connection")
	}
	p1, p2 := net.Pipe() // no file descriptor to poll
	defer p1.Close()
	defer p2.Close()
	if Wrap(p1, time.Millisecond) != p1 {
		t.Fatal("a connection without a file descriptor was wrapped")
	}
	if w, _ := pair(t, 50*time.Microsecond); w.(*conn) == nil {
		t.Fatal("not wrapped")
	}
}

// TestEcho sends messages of many sizes both ways and checks every byte
// read through the polling conn, with buffers smaller and larger than
// what is there to read.
func TestEcho(t *testing.T) {
	a, b := pair(t, 50*time.Microsecond)
	go io.Copy(b, b) // echo
	for _, n := range []int{1, 7, 512, 64 << 10, 1 << 20} {
		msg := make([]byte, n)
		rand.Read(msg)
		go a.Write(msg)
		got := make([]byte, 0, n)
		buf := make([]byte, 3000)
		for len(got) < n {
			k, err := a.Read(buf)
			if err != nil {
				t.Fatalf("size %d: read after %d bytes: %v", n, len(got), err)
			}
			got = append(got, buf[:k]...)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("size %d: echo differs", n)
		}
	}
	if k, err := a.Read(nil); k != 0 || err != nil {
		t.Fatalf("empty read = %d, %v", k, err)
	}
}

func TestEOF(t *testing.T) {
	a, b := pair(t, 50*time.Microsecond)
	b.Write([]byte("last"))
	b.Close()
	got, err := io.ReadAll(a)
	if err != nil || string(got) != "last" {
		t.Fatalf("ReadAll = %q, %v; want \"last\", nil (io.EOF at the end)", got, err)
	}
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after EOF = %v, want io.EOF", err)
	}
}

// TestDeadline: a read deadline cuts the wait short (during the poll and
// after it), as on a plain conn.
func TestDeadline(t *testing.T) {
	for _, window := range []time.Duration{50 * time.Microsecond, 500 * time.Millisecond} {
		a, _ := pair(t, window)
		a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		start := time.Now()
		_, err := a.Read(make([]byte, 8))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("window %v: read = %v, want a timeout", window, err)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("window %v: read returned after %v", window, el)
		}
	}
}

// TestCloseWakesReader: closing the conn while a read waits returns
// net.ErrClosed, as on a plain conn.
func TestCloseWakesReader(t *testing.T) {
	a, _ := pair(t, 50*time.Microsecond)
	done := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	a.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read still waiting 10s after Close")
	}
}

func TestFromEnv(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "50us": 50 * time.Microsecond, "junk": 0, "-1ms": 0, "1ms": time.Millisecond} {
		t.Setenv("ZHOST_TEST_BUSY_POLL", v)
		if got := FromEnv("ZHOST_TEST_BUSY_POLL"); got != want {
			t.Errorf("FromEnv(%q) = %v, want %v", v, got, want)
		}
	}
}

// BenchmarkRoundTrip is a 32-byte ping-pong between two goroutines over
// TCP loopback, both ends polling for the window or not at all. Between
// processes the gain is larger (see docs/performance.md).
func BenchmarkRoundTrip(b *testing.B) {
	for _, window := range []time.Duration{0, 50 * time.Microsecond} {
		b.Run("window="+window.String(), func(b *testing.B) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c = Wrap(c, window)
				defer c.Close()
				buf := make([]byte, 32)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
			raw, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			c := Wrap(raw, window)
			defer c.Close()
			buf := make([]byte, 32)
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCloseWrite: the wrapper keeps *net.TCPConn's half-close (the
// server half-closes after a last error frame): the peer reads EOF and
// the wrapped end still reads what the peer sends.
func TestCloseWrite(t *testing.T) {
	a, b := pair(t, 50*time.Microsecond)
	cw, ok := a.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite", a)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("peer read after CloseWrite = %v, want io.EOF", err)
	}
	if _, err := b.Write([]byte("late")); err != nil {
		t.Fatalf("peer write after CloseWrite: %v", err)
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(a, got); err != nil || string(got) != "late" {
		t.Fatalf("read after CloseWrite = %q, %v", got, err)
	}
}

// TestPollHonoursDeadlineAndClose: a read that is polling stops when its
// deadline passes, when the deadline is moved into the past, and when
// the conn is closed, as a plain conn's read does, not when its window
// ends (a long window here, so that a read that waits for it shows); and
// Close, which waits until no read holds the fd, returns as soon.
func TestPollHonoursDeadlineAndClose(t *testing.T) {
	const window, prompt = 5 * time.Second, 2 * time.Second
	for _, tc := range []struct {
		name   string
		before func(c net.Conn) // before the read
		during func(c net.Conn) // while it polls
		want   error
	}{
		{"deadline passes", func(c net.Conn) { c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) }, nil, os.ErrDeadlineExceeded},
		{"deadline passes (SetDeadline)", func(c net.Conn) { c.SetDeadline(time.Now().Add(20 * time.Millisecond)) }, nil, os.ErrDeadlineExceeded},
		{"deadline moved to the past", nil, func(c net.Conn) { c.SetReadDeadline(time.Now().Add(-time.Second)) }, os.ErrDeadlineExceeded},
		{"closed", nil, func(c net.Conn) { c.Close() }, net.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := pair(t, window)
			if tc.before != nil {
				tc.before(a)
			}
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := a.Read(make([]byte, 8))
				done <- err
			}()
			if tc.during != nil {
				// Let the read start polling; if it has not yet, it
				// must return at once all the same.
				time.Sleep(20 * time.Millisecond)
				at := time.Now()
				tc.during(a)
				// Close waits for the read to let go of the fd.
				if el := time.Since(at); el > prompt {
					t.Fatalf("%s took %v: it waited for the poll window", tc.name, el)
				}
			}
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("read = %v, want %v", err, tc.want)
				}
				if el := time.Since(start); el > prompt {
					t.Fatalf("read returned after %v: it waited for the poll window", el)
				}
			case <-time.After(window + 10*time.Second):
				t.Fatal("read did not return")
			}
		})
	}
}

// TestErrorShape: a failed read's error is a plain conn's: one
// *net.OpError "read" around the cause itself, so that callers and logs
// see the same error with busy_poll on as off.
func TestErrorShape(t *testing.T) {
	for _, window := range []time.Duration{0, 50 * time.Microsecond} {
		a, _ := pair(t, window)
		a.SetReadDeadline(time.Now().Add(-time.Second))
		_, timeout := a.Read(make([]byte, 8))
		a.Close()
		_, closed := a.Read(make([]byte, 8))
		for _, c := range []struct {
			err, cause error
		}{{timeout, os.ErrDeadlineExceeded}, {closed, net.ErrClosed}} {
			oe, ok := c.err.(*net.OpError)
			if !ok || oe.Op != "read" || oe.Err != c.cause {
				t.Errorf("window %v: read = %#v (%v), want a *net.OpError read around %v", window, c.err, c.err, c.cause)
			}
		}
	}
}

// TestParkedReadSeesDataWhilePolling: reads kept polling by a steady
// trickle of messages must not hide other connections' data from the
// scheduler. A polling read is always runnable, so a P that runs it never
// polls the network itself; with as many polling reads as Ps, a read
// parked in the poller waited for the runtime's background poll (about
// 8-10 ms) every time. Polling reads are limited to GOMAXPROCS-1, so one
// P is always free to poll (with GOMAXPROCS 1, none poll).
func TestParkedReadSeesDataWhilePolling(t *testing.T) {
	for _, tc := range []struct{ procs, readers int }{{1, 2}, {2, 3}, {2, 1}} {
		t.Run(fmt.Sprintf("gomaxprocs=%d/polling=%d", tc.procs, tc.readers), func(t *testing.T) {
			parkedReadWake(t, tc.procs, tc.readers)
		})
	}
}

func parkedReadWake(t *testing.T, procs, readers int) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	for range readers {
		a, b := pair(t, 5*time.Millisecond)
		wg.Add(2)
		go func() {
			defer wg.Done()
			io.Copy(io.Discard, a)
		}()
		go func() {
			defer wg.Done()
			defer a.Close()
			tick := time.NewTicker(200 * time.Microsecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					b.Write([]byte("x"))
				}
			}
		}()
	}

	x, y := pair(t, 0)
	read := make(chan time.Time)
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := y.Read(buf); err != nil {
				close(read)
				return
			}
			read <- time.Now()
		}
	}()
	var wakes []time.Duration
	for range 20 {
		// Give y's reader time to park in the poller (if it has not,
		// the sample is only faster).
		time.Sleep(2 * time.Millisecond)
		start := time.Now()
		if _, err := x.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		at, ok := <-read
		if !ok {
			t.Fatal("read failed")
		}
		wakes = append(wakes, at.Sub(start))
	}
	slices.Sort(wakes)
	t.Logf("parked read woken after %v (median), %v (max)", wakes[len(wakes)/2], wakes[len(wakes)-1])
	if med := wakes[len(wakes)/2]; med > 2*time.Millisecond {
		t.Fatalf("a parked read took %v (median of %d) to see its data while %d reads were kept polling with GOMAXPROCS %d; all: %v", med, len(wakes), readers, procs, wakes)
	}
}

// TestNext: the window opens to the most whenever a poll of the most
// would have caught the data, and halves toward closed when it would not.
func TestNext(t *testing.T) {
	const max = 40 * time.Microsecond
	for _, tc := range []struct {
		name            string
		window          time.Duration
		paid, contended bool
		waited          time.Duration
		want            time.Duration
	}{
		{"paid", max, true, false, 10 * time.Microsecond, max},
		{"paid after a halving", max / 2, true, false, 15 * time.Microsecond, max},
		{"parked, came within the most", max / 4, false, false, 30 * time.Microsecond, max},
		{"closed, came within the most", 0, false, false, max, max},
		{"polled in vain, long wait", max, false, false, time.Millisecond, max / 2},
		{"halved again", max / 2, false, false, time.Millisecond, max / 4},
		{"at an eighth", max / 4, false, false, time.Millisecond, max / 8},
		{"below an eighth closes", max / 8, false, false, time.Millisecond, 0},
		{"closed stays closed", 0, false, false, time.Millisecond, 0},
		{"lost the CPU closes", max, false, true, 10 * time.Microsecond, 0},
		{"a probe that loses the CPU", 0, false, true, 10 * time.Microsecond, 0},
		{"a probe that pays", 0, true, false, 10 * time.Microsecond, max},
	} {
		if got := next(max, tc.window, tc.paid, tc.contended, tc.waited); got != tc.want {
			t.Errorf("%s: next(%v, %v, %v, %v, %v) = %v, want %v", tc.name, max, tc.window, tc.paid, tc.contended, tc.waited, got, tc.want)
		}
	}
}

// TestProbeWhileClosed: a closed window polls on every probeEvery-th wait
// only, for the most.
func TestProbeWhileClosed(t *testing.T) {
	a, _ := pair(t, time.Millisecond)
	c := a.(*conn)
	var polled []int
	for i := 1; i <= 3*probeEvery; i++ {
		if w := c.pollWindow(0); w != 0 {
			if w != time.Millisecond {
				t.Fatalf("probe %d polls for %v, want the most (1ms)", i, w)
			}
			polled = append(polled, i)
		}
	}
	if want := []int{probeEvery, 2 * probeEvery, 3 * probeEvery}; !slices.Equal(polled, want) {
		t.Fatalf("closed window polled on waits %v, want %v", polled, want)
	}
}

// adaptingPair returns a pair whose first end polls for up to max, with
// its thread taken to lose the CPU after gap between two attempts, and a
// func that has the other end write one byte after delay and reads it.
func adaptingPair(t *testing.T, max, gap time.Duration) (*conn, func(delay time.Duration)) {
	t.Helper()
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("no read polls with GOMAXPROCS 1")
	}
	a, b := pair(t, max)
	c := a.(*conn)
	c.gap = gap
	buf := make([]byte, 1)
	return c, func(delay time.Duration) {
		t.Helper()
		go func() {
			time.Sleep(delay)
			b.Write([]byte("x"))
		}()
		a.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := a.Read(buf); n != 1 || err != nil {
			t.Fatalf("read = %d, %v", n, err)
		}
	}
}

// TestWindowAdapts drives a real connection: replies that come long after
// the most close the window within a few reads (so a connection that
// waits for slow work stops burning CPU), and replies that come quickly
// open it again. The most is long (5 ms) so that a parked read's wake-up
// on a busy machine is still well inside it.
func TestWindowAdapts(t *testing.T) {
	const max = 5 * time.Millisecond
	// The test is about the waits; a machine busy with other tests must
	// not close the window as contended (TestContendedPollCloses): no gap
	// counts.
	c, exchange := adaptingPair(t, max, time.Hour)
	window := func() time.Duration { return time.Duration(c.window.Load()) }

	// 5 -> 2.5 -> 1.25 -> 0.625 ms -> closed: four slow replies.
	for i := range 4 {
		exchange(25 * time.Millisecond)
		if i < 3 && window() == 0 {
			t.Fatalf("window closed after %d slow replies, want 4", i+1)
		}
	}
	if w := window(); w != 0 {
		t.Fatalf("window %v after 4 replies each 25ms late, want closed", w)
	}
	exchange(25 * time.Millisecond)
	if w := window(); w != 0 {
		t.Fatalf("window %v after another slow reply, want closed", w)
	}
	// A reply within the most opens it again, and quick replies keep it.
	for range 3 {
		exchange(100 * time.Microsecond)
		if w := window(); w != max {
			t.Fatalf("window %v after a quick reply, want %v", w, max)
		}
	}
}

// TestContendedPollCloses: a poll whose thread goes longer than the gap
// between two attempts takes the CPUs for contended and closes the window
// (here every gap counts, as if the thread lost its CPU at each attempt),
// and the read still returns its data.
func TestContendedPollCloses(t *testing.T) {
	c, exchange := adaptingPair(t, 5*time.Millisecond, 0)
	exchange(time.Millisecond)
	if w := time.Duration(c.window.Load()); w != 0 {
		t.Fatalf("window %v after a contended poll, want closed", w)
	}
}
