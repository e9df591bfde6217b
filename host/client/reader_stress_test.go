package client

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

// pushServer is a scripted server that answers Loads after a random
// delay, sometimes splitting a reply in two writes, and pushes numbered
// invalidations (tid 6, 7, ...) on every connection while it lives.
type pushServer struct {
	addr    string
	pushed  atomic.Uint64 // last tid pushed
	maxPush uint64
	tls     *tls.Config
	silent  atomic.Bool // answer no Load
}

func startPushServer(t *testing.T, maxPush uint64, tcfg *tls.Config) *pushServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &pushServer{addr: l.Addr().String(), maxPush: maxPush, tls: tcfg}
	s.pushed.Store(5)
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if s.tls != nil {
				c = tls.Server(c, s.tls)
			}
			wg.Go(func() { s.serve(c, done, &wg) })
		}
	})
	return s
}

func (s *pushServer) serve(c net.Conn, done chan struct{}, wg *sync.WaitGroup) {
	defer c.Close()
	var mu sync.Mutex
	write := func(b ...[]byte) {
		mu.Lock()
		defer mu.Unlock()
		for i, p := range b {
			if i > 0 {
				time.Sleep(200 * time.Microsecond)
			}
			c.Write(p)
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	fr := wire.FrameReader{R: bufio.NewReader(c), Max: wire.DefaultMaxMessageSize}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		if answerHandshake(f, func(b []byte) { write(b) }, storage.Tid(s.pushed.Load())) {
			if f.Kind != wire.KindOpen {
				continue
			}
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-done:
						return
					case <-time.After(time.Duration(mrand.IntN(400)) * time.Microsecond):
					}
					mu.Lock()
					tid := s.pushed.Load() + 1
					if tid > s.maxPush {
						mu.Unlock()
						return
					}
					s.pushed.Store(tid)
					c.Write(wire.EncodeFrame(0, &wire.Invalidate{Handle: 1, Tid: storage.Tid(tid), Oids: []storage.Oid{storage.Oid(tid % 7)}}))
					mu.Unlock()
				}
			})
			continue
		}
		if s.silent.Load() {
			continue
		}
		wg.Go(func() {
			time.Sleep(time.Duration(mrand.IntN(1500)) * time.Microsecond)
			b := recordReply(f, "r")
			if mrand.IntN(5) == 0 {
				k := 1 + mrand.IntN(len(b)-1)
				write(b[:k], b[k:])
			} else {
				write(b)
			}
		})
	}
}

func selfSigned(t *testing.T) (*tls.Config, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

// TestStressReaderHandoff: many callers, some cancelled or timing out at
// random moments, share a link on which the server interleaves pushes
// with replies, some of them split across writes. Every call returns in
// time with its own reply or its context's error, every push is applied
// once and in order, the link never breaks, and an idle client catches
// up with the pushes without calls.
func TestStressReaderHandoff(t *testing.T) {
	for _, mode := range []string{"plain", "busypoll", "tls", "tls+busypoll"} {
		t.Run(mode, func(t *testing.T) {
			var stls, ctls *tls.Config
			if strings.HasPrefix(mode, "tls") {
				stls, ctls = selfSigned(t)
			}
			s := startPushServer(t, 4000, stls)
			o := Options{Addr: s.addr, Partition: "main", CacheSize: -1, CallTimeout: 5 * time.Second, TLS: ctls}
			if strings.HasSuffix(mode, "busypoll") {
				o.BusyPoll = 50 * time.Microsecond
			}
			c, err := Open(ctxT(t), o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			var wmu sync.Mutex
			var last storage.Tid
			var bad atomic.Int64
			c.Watch(func(tid storage.Tid, oids []storage.Oid) {
				wmu.Lock()
				defer wmu.Unlock()
				if last != 0 && tid != last+1 {
					if bad.Add(1) < 5 {
						t.Errorf("push %s after %s", tid, last)
					}
				}
				last = tid
			})
			run := 1200 * time.Millisecond
			if testing.Short() {
				run = 400 * time.Millisecond
			}
			stop := time.Now().Add(run)
			var wg sync.WaitGroup
			var ok, cancelled atomic.Int64
			for g := range 12 {
				wg.Go(func() {
					for i := 0; i < 100000 && time.Now().Before(stop); i++ {
						oid := storage.Oid(1 + mrand.IntN(1000))
						ctx, cancel := context.Background(), context.CancelFunc(func() {})
						limit := 5 * time.Second
						switch (g + i) % 4 {
						case 1:
							d := time.Duration(mrand.IntN(2000)) * time.Microsecond
							ctx, cancel = context.WithTimeout(ctx, d)
							limit = d
						case 2:
							d := time.Duration(mrand.IntN(2000)) * time.Microsecond
							ctx, cancel = context.WithCancel(ctx)
							time.AfterFunc(d, cancel)
							limit = d
						}
						start := time.Now()
						r, err := c.Load(ctx, oid)
						took := time.Since(start)
						cancel()
						switch {
						case err == nil && r.Oid != oid:
							t.Errorf("load %d got %d", oid, r.Oid)
							return
						case err == nil:
							ok.Add(1)
						case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
							cancelled.Add(1)
						default:
							t.Errorf("load %d: %v", oid, err)
							return
						}
						// A frame in progress may hold a cancelled leader
						// a little; far less than this.
						if took > limit+500*time.Millisecond {
							t.Errorf("load %d took %s with a limit of %s (%v)", oid, took, limit, err)
						}
					}
				})
			}
			wg.Wait()
			t.Logf("%d replies, %d cancelled, pushed up to %d", ok.Load(), cancelled.Load(), s.pushed.Load())
			if st := c.Conn().State(); st.Reconnects != 0 || !st.Connected {
				t.Fatalf("link broke: %+v", st)
			}
			// Idle now: the pushes still coming are applied without calls.
			time.Sleep(50 * time.Millisecond)
			target := storage.Tid(s.pushed.Load())
			deadline := time.Now().Add(2 * time.Second)
			for {
				wmu.Lock()
				l := last
				wmu.Unlock()
				if l >= target {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("idle client applied pushes up to %s, server pushed %s", l, target)
				}
				time.Sleep(time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := c.WaitForTid(ctx, storage.Tid(s.pushed.Load())); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCloseDuringLead: Close fails a call that is reading the connection
// for its reply, and those waiting behind it, at once, through TLS and
// busy polling too, and leaves no goroutine of the link behind.
func TestCloseDuringLead(t *testing.T) {
	for _, mode := range []string{"plain", "busypoll", "tls", "tls+busypoll"} {
		t.Run(mode, func(t *testing.T) {
			base := runtime.NumGoroutine()
			var stls, ctls *tls.Config
			if strings.HasPrefix(mode, "tls") {
				stls, ctls = selfSigned(t)
			}
			s := startPushServer(t, 0, stls)
			s.silent.Store(true)
			o := Options{Addr: s.addr, Partition: "main", CacheSize: -1, TLS: ctls}
			if strings.HasSuffix(mode, "busypoll") {
				o.BusyPoll = 50 * time.Microsecond
			}
			c, err := Open(ctxT(t), o)
			if err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, 4)
			for i := range 4 {
				go func() {
					_, err := c.Load(context.Background(), storage.Oid(1+i))
					errs <- err
				}()
			}
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			c.Close()
			for range 4 {
				select {
				case err := <-errs:
					if err == nil {
						t.Fatal("load answered")
					}
				case <-time.After(2 * time.Second):
					t.Fatal("a load did not return after Close")
				}
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Fatalf("loads returned %s after Close", d)
			}
			deadline := time.Now().Add(2 * time.Second)
			for runtime.NumGoroutine() > base+4 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > base+4 {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines after Close, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}
