package testbin

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Alive reports whether pid is a live process. A zombie counts as dead:
// it is gone, only not yet reaped.
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	state, _, ok := procStat(pid)
	return ok && state != "Z"
}

// Children returns the pids of pid's live child processes (Linux /proc).
func Children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		var c int
		if _, err := fmt.Sscan(e.Name(), &c); err != nil {
			continue
		}
		if state, ppid, ok := procStat(c); ok && ppid == pid && state != "Z" {
			out = append(out, c)
		}
	}
	return out
}

// procStat reads the state and parent pid of pid from /proc/PID/stat
// ("pid (comm) S ppid ..."; comm may hold spaces and parentheses).
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndex(s, ") ")
	if i < 0 {
		return "", 0, false
	}
	if _, err := fmt.Sscan(s[i+2:], &state, &ppid); err != nil {
		return "", 0, false
	}
	return state, ppid, true
}
