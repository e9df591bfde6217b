package server_test

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/wire"
)

// TestRegressionBusyPollFatalHalfCloses: a connection the server drops
// for a bad frame ends the same with busy_poll on as off: the error
// frame, then a clean end of stream, because the server half-closes
// before it closes. The busy-poll wrapper hid *net.TCPConn's CloseWrite,
// so the server closed with the client's bytes unread and the client saw
// a reset instead (when its bytes reached the server before the close,
// as they do in most of the attempts here).
func TestRegressionBusyPollFatalHalfCloses(t *testing.T) {
	for _, window := range []time.Duration{0, 50 * time.Microsecond} {
		t.Run("busy_poll="+window.String(), func(t *testing.T) {
			_, addr, _ := start(t, func(o *server.Options) {
				o.MaxMessageSize = 64 << 10
				o.BusyPoll = window
			})
			// A header past the limit and 1 MiB of body that the server
			// never reads.
			frame := make([]byte, 1<<20)
			binary.BigEndian.PutUint32(frame, 1<<30)
			frame[4] = byte(wire.KindVote)
			for attempt := range 10 {
				r := dialRaw(t, addr)
				r.hello()
				wrote := make(chan struct{})
				go func() {
					defer close(wrote)
					r.c.Write(frame)
				}()
				r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				var (
					last wire.Message
					err  error
				)
				for {
					var f wire.Frame
					if f, err = r.fr.ReadFrame(); err != nil {
						break
					}
					last, _ = wire.Decode(f)
				}
				r.c.Close()
				<-wrote
				if e, ok := last.(*wire.Error); !ok || e.Code != wire.CodeTooLarge {
					t.Fatalf("attempt %d: last frame %#v, want an Error with code %d", attempt, last, wire.CodeTooLarge)
				}
				if !errors.Is(err, io.EOF) {
					t.Fatalf("attempt %d: after the error frame: %v, want io.EOF (the server half-closes)", attempt, err)
				}
			}
		})
	}
}
