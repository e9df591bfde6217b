package host

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// maxLogLine bounds one relayed line; the rest of a longer line is
// dropped (and said so), never left unread.
const maxLogLine = 1 << 20

// RelayLog reads hclog JSON lines (what every node and plugin writes on
// stderr) from r and re-emits each through l at its own level, so a child's
// log appears in the parent's log under the child's name. Lines that are
// not JSON are logged at info level as they are; a line longer than 1 MiB
// is cut there. It reads r to its end whatever it holds, so a child never
// blocks on a full pipe, and returns when r is exhausted or fails.
func RelayLog(r io.Reader, l hclog.Logger) {
	br := bufio.NewReaderSize(r, 64*1024)
	var line []byte
	dropped := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if room := maxLogLine - len(line); len(chunk) <= room {
			line = append(line, chunk...)
		} else {
			line = append(line, chunk[:room]...)
			dropped += len(chunk) - room
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // the line goes on
		}
		if dropped > 0 {
			l.Warn("log line too long; cut", "kept_bytes", len(line), "dropped_bytes", dropped)
			l.Info(string(bytes.TrimRight(line, "\r\n")))
		} else if len(line) > 0 {
			relayLine(bytes.TrimRight(line, "\r\n"), l)
		}
		line, dropped = line[:0], 0
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.Warn("log relay stopped", "error", err)
			}
			return
		}
	}
}

func relayLine(line []byte, l hclog.Logger) {
	if len(strings.TrimSpace(string(line))) == 0 {
		return
	}
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber() // keep 1795558712051522600 and 1.5e3 as the child wrote them
	if line[0] != '{' || dec.Decode(&raw) != nil {
		l.Info(string(line))
		return
	}
	msg := fmt.Sprint(raw["@message"])
	level := hclog.LevelFromString(fmt.Sprint(raw["@level"]))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	module, _ := raw["@module"].(string)
	for _, k := range []string{"@message", "@level", "@timestamp", "@module", "@caller"} {
		delete(raw, k)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, raw[k])
	}
	if module != "" {
		// The child names its own sub-loggers ("app1.server"); keep the
		// part below the child's own name.
		if i := strings.IndexByte(module, '.'); i >= 0 {
			l = l.Named(module[i+1:])
		}
	}
	l.Log(level, msg, args...)
}
