//go:build linux

package server_test

import (
	"context"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/client"
)

// TestRegressionAcceptStopsOnEMFILE: when the process runs out of file
// descriptors, Accept fails with EMFILE, which is not a timeout: the
// accept loop logs "accept failed" and returns, and the server never
// accepts a connection again (clients that reconnect later are locked
// out for good), although the condition was transient.
func TestRegressionAcceptStopsOnEMFILE(t *testing.T) {
	_, addr, _ := start(t, nil)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skip(err)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	lim := old
	lim.Cur = uint64(len(fds) + 20)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	var conns []net.Conn
	for i := 0; i < 40; i++ { // each costs a client fd and a server fd
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond) // the server hits EMFILE in Accept
	for _, c := range conns {
		c.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := client.Open(ctx, client.Options{Addr: addr, Partition: "main", Name: "after", WaitTimeout: 2 * time.Second, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatalf("after a transient fd shortage the server accepts no connection any more: %v", err)
	}
	c.Close()
}
