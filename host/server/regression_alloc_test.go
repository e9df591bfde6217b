package server_test

import (
	"encoding/binary"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/wire"
)

// TestRegressionFrameHeaderAllocatesBody: a peer that sends only a frame
// header announcing a 64 MiB body makes the server allocate the whole
// body at once, before any of it (or even a Hello) arrived, and keep it
// for FrameTimeout. A handful of connections cost gigabytes.
func TestRegressionFrameHeaderAllocatesBody(t *testing.T) {
	_, addr, _ := start(t, nil)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const conns = 6
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		var h [wire.HeaderSize]byte
		binary.BigEndian.PutUint32(h[:], wire.DefaultMaxMessageSize) // length only, no body, no Hello
		h[4] = byte(wire.KindHello)
		if _, err := c.Write(h[:]); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew by %d MiB for %d connections that sent 9 bytes each", grew>>20, conns)
	if grew > 64<<20 {
		t.Fatalf("server allocated %d MiB for %d bare frame headers", grew>>20, conns)
	}
}
