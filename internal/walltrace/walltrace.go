// Package walltrace records wall-clock marks along a request's path
// (client, server, plugin) for measuring where a write's time goes
// across processes. It is a measuring tool, not an operator feature:
// it is off unless the environment variable ZHOST_WALLTRACE names a
// directory when the process starts, and then every process that
// imports it appends "unix-nanoseconds mark" lines to
// DIR/walltrace-PID.txt. Wall clock (time.Now().UnixNano) is comparable
// across processes on one machine, so the files of the worker, the
// server and the plugin merge into one timeline.
//
// When off, Mark costs one predictable branch on a package variable.
package walltrace

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Env names the directory the trace files go to; unset or empty: off.
const Env = "ZHOST_WALLTRACE"

// On reports whether marks are recorded. It is set once, at start.
var On = os.Getenv(Env) != ""

var (
	mu   sync.Mutex
	buf  []byte
	file *os.File
)

// flushEvery bounds the memory a trace holds before it is written out;
// the write happens on the marking goroutine, so keep it rare.
const flushEvery = 1 << 20

func init() {
	if !On {
		return
	}
	dir := os.Getenv(Env)
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("walltrace-%d.txt", os.Getpid())),
		os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		// A measuring aid must not stop the process: stay off.
		On = false
		return
	}
	file = f
	buf = make([]byte, 0, flushEvery+4096)
	go func() {
		// Processes may be killed rather than exit; a periodic flush
		// keeps all but the last fraction of a second.
		for range time.Tick(200 * time.Millisecond) {
			Flush()
		}
	}()
}

// Mark records that what happened now. Call it only when On is true
// (callers test On first, so the arguments cost nothing when off).
func Mark(what string) {
	now := time.Now().UnixNano()
	mu.Lock()
	buf = strconv.AppendInt(buf, now, 10)
	buf = append(buf, ' ')
	buf = append(buf, what...)
	buf = append(buf, '\n')
	full := len(buf) >= flushEvery
	mu.Unlock()
	if full {
		Flush()
	}
}

// Flush writes the recorded marks out.
func Flush() {
	if !On {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if len(buf) == 0 {
		return
	}
	_, _ = file.Write(buf) // best effort: a measuring aid
	buf = buf[:0]
}
