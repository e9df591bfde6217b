package host

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// RelayLog reads hclog JSON lines (what every node and plugin writes on
// stderr) from r and re-emits each through l at its own level, so a child's
// log appears in the parent's log under the child's name. Lines that are
// not JSON are logged at info level as they are. It returns when r is
// exhausted.
func RelayLog(r io.Reader, l hclog.Logger) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		relayLine(sc.Bytes(), l)
	}
	if err := sc.Err(); err != nil {
		l.Warn("log relay stopped", "error", err)
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
