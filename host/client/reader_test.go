package client

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

// scriptedServer answers Hello and Open like a server and hands every
// other frame to answer, which writes (or withholds) the reply on c.
// Writes to c must hold mu.
type scriptedServer struct {
	addr string
	mu   sync.Mutex
}

func startScripted(t *testing.T, answer func(s *scriptedServer, c net.Conn, f wire.Frame)) *scriptedServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedServer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			wg.Go(func() {
				fr := wire.FrameReader{R: bufio.NewReader(c), Max: wire.DefaultMaxMessageSize}
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					if !answerHandshake(f, func(b []byte) { s.write(c, b) }, 5) {
						go answer(s, c, f)
					}
				}
			})
		}
	})
	return s
}

// answerHandshake answers f like a server if it is a Hello or an Open
// (partition handle 1, caught up to lastTid) and reports whether it was.
func answerHandshake(f wire.Frame, write func([]byte), lastTid storage.Tid) bool {
	switch f.Kind {
	case wire.KindHello:
		write(wire.EncodeFrame(f.ID, &wire.Welcome{Version: wire.Version, MaxMessageSize: 1 << 20}))
	case wire.KindOpen:
		write(wire.EncodeFrame(f.ID, &wire.Opened{Handle: 1, LastTid: lastTid}))
	default:
		return false
	}
	return true
}

func (s *scriptedServer) write(c net.Conn, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Write(b)
}

func recordReply(f wire.Frame, data string) []byte {
	var m wire.Load
	m.Decode(wire.NewDecoder(f.Body))
	return wire.EncodeFrame(f.ID, &wire.RecordReply{Record: storage.Record{Oid: m.Oid, Serial: 3, Data: []byte(data)}})
}

// TestLeaderHonoursCancel: a caller reading the connection for its own
// reply returns as soon as its context is cancelled, although its
// context has no deadline and CallTimeout is long, and the connection
// stays usable: the reply that comes later is dropped, the next call
// gets its own.
func TestLeaderHonoursCancel(t *testing.T) {
	s := startScripted(t, func(s *scriptedServer, c net.Conn, f wire.Frame) {
		var m wire.Load
		m.Decode(wire.NewDecoder(f.Body))
		if m.Oid == 1 {
			time.Sleep(300 * time.Millisecond)
		}
		s.write(c, recordReply(f, "late"))
	})
	c, err := Open(context.Background(), Options{Addr: s.addr, Partition: "main", CallTimeout: time.Minute, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := c.Load(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("load with a cancelled context = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("cancelled load returned after %s, want about 50ms", d)
	}
	r, err := c.Load(ctxT(t), 2)
	if err != nil || r.Oid != 2 {
		t.Fatalf("next load = %v, %v; want oid 2", r.Oid, err)
	}
	time.Sleep(350 * time.Millisecond) // the late reply to oid 1 arrives
	if r, err := c.Load(ctxT(t), 3); err != nil || r.Oid != 3 {
		t.Fatalf("load after the late reply = %v, %v; want oid 3", r.Oid, err)
	}
}

// TestCancelDoesNotCutAFrame: a context that ends while its reply's
// frame is half read lets the frame be read whole, so the stream stays
// in step for everyone else on the connection.
func TestCancelDoesNotCutAFrame(t *testing.T) {
	s := startScripted(t, func(s *scriptedServer, c net.Conn, f wire.Frame) {
		b := recordReply(f, string(make([]byte, 4000)))
		var m wire.Load
		m.Decode(wire.NewDecoder(f.Body))
		if m.Oid != 1 {
			s.write(c, b)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		c.Write(b[:100])
		time.Sleep(200 * time.Millisecond)
		c.Write(b[100:])
	})
	c, err := Open(context.Background(), Options{Addr: s.addr, Partition: "main", CallTimeout: time.Minute, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(80*time.Millisecond, cancel)
	_, err = c.Load(ctx, 1)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("load cancelled mid-frame = %v", err)
	}
	for oid := storage.Oid(2); oid < 5; oid++ {
		if r, err := c.Load(ctxT(t), oid); err != nil || r.Oid != oid {
			t.Fatalf("load %d after a cancel mid-frame = %v, %v", oid, r.Oid, err)
		}
	}
	if st := c.Conn().State(); st.Reconnects != 0 || !st.Connected {
		t.Fatalf("connection state %+v: the cancel broke the link", st)
	}
}

// TestStallInMidFrameFailsTheLink: a server that sends part of a frame
// and then nothing cannot hang the caller reading it: after CallTimeout
// the link fails with an error that says what happened.
func TestStallInMidFrameFailsTheLink(t *testing.T) {
	s := startScripted(t, func(s *scriptedServer, c net.Conn, f wire.Frame) {
		s.write(c, recordReply(f, "x")[:10])
	})
	c, err := Open(context.Background(), Options{Addr: s.addr, Partition: "main", CallTimeout: 200 * time.Millisecond, CacheSize: -1, WaitTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	_, err = c.Load(context.Background(), 1)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("load from a server stalled in mid-frame = %v after %s", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "part of a frame") {
		t.Fatalf("load from a server stalled in mid-frame = %v; want an error that says so", err)
	}
	// The broken link was dropped: the client connects again.
	deadline := time.Now().Add(5 * time.Second)
	for c.Conn().State().Reconnects == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := c.Conn().State(); st.Reconnects == 0 {
		t.Fatalf("the client did not reconnect after the stall: %+v", st)
	}
}

// TestFollowerAnsweredAfterLeaderLeaves: calls that wait while another
// caller reads get their replies after that caller has gone, with no
// further calls to read them.
func TestFollowerAnsweredAfterLeaderLeaves(t *testing.T) {
	s := startScripted(t, func(s *scriptedServer, c net.Conn, f wire.Frame) {
		var m wire.Load
		m.Decode(wire.NewDecoder(f.Body))
		time.Sleep(time.Duration(m.Oid) * 20 * time.Millisecond)
		s.write(c, recordReply(f, "r"))
	})
	c, err := Open(context.Background(), Options{Addr: s.addr, Partition: "main", CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	const n = 8
	errs := make(chan error, n)
	for oid := storage.Oid(1); oid <= n; oid++ {
		go func() {
			r, err := c.Load(ctxT(t), oid)
			if err == nil && r.Oid != oid {
				err = errors.New("wrong record")
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestLeaderCallTimeoutUnderSteadyStream: a caller without a context
// deadline that reads the connection for a reply that never comes gets
// its CallTimeout error in time even while the server keeps sending
// other frames, written so that every read ends inside a frame (the
// reader never finds its buffer empty between two frames).
func TestLeaderCallTimeoutUnderSteadyStream(t *testing.T) {
	const callTimeout = 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		stop := make(chan struct{})
		var stopOnce sync.Once
		halt := func() { stopOnce.Do(func() { close(stop) }) }
		s := startScripted(t, func(s *scriptedServer, c net.Conn, f wire.Frame) {
			var m wire.Load
			m.Decode(wire.NewDecoder(f.Body))
			if m.Oid != 1 {
				s.write(c, recordReply(f, "r"))
				return
			}
			// No reply to oid 1; instead pushes, each write ending
			// halfway through the next one, for up to 3s.
			frame := func(tid int) []byte {
				return wire.EncodeFrame(0, &wire.Invalidate{Handle: 99, Tid: storage.Tid(1000 + tid), Oids: []storage.Oid{7}})
			}
			prev := frame(0)
			half := len(prev) / 2
			s.write(c, prev[:half])
			for i := 1; i < 1500; i++ {
				select {
				case <-stop:
					s.write(c, prev[half:])
					return
				case <-time.After(2 * time.Millisecond):
				}
				next := frame(i)
				s.write(c, append(append([]byte(nil), prev[half:]...), next[:half]...))
				prev = next
			}
			s.write(c, prev[half:])
		})
		c, err := Open(context.Background(), Options{Addr: s.addr, Partition: "main", CallTimeout: callTimeout, CacheSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Load(ctxT(t), 2); err != nil {
			t.Fatal(err)
		}
		c.conn.mu.Lock()
		l := c.conn.cur
		c.conn.mu.Unlock()
		led := l.led.Load()
		start := time.Now()
		_, err = c.Load(context.Background(), 1)
		took := time.Since(start)
		halt()
		ledIt := l.led.Load() == led+1
		c.Close()
		if !ledIt && attempt < 5 {
			continue // the call waited for the background reader: try again
		}
		if !ledIt {
			t.Fatal("the call never read the connection itself")
		}
		if !errors.Is(err, context.DeadlineExceeded) || took > callTimeout+300*time.Millisecond {
			t.Fatalf("load with no reply under a steady stream = %v after %s; want a timeout after about %s", err, took, callTimeout)
		}
		return
	}
}
