package host

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
)

// EnvLogJSON, when "1", makes a node log hclog JSON on stderr. The
// supervisor sets it for its children so it can relay their logs with the
// right level under their node name.
const EnvLogJSON = "ZHOST_LOG_JSON"

// EnvLogLevel sets the log level of every node ("debug", "info", ...).
const EnvLogLevel = "ZHOST_LOG_LEVEL"

// NewLogger returns the logger of one node: named after the node, on
// stderr (JSON when EnvLogJSON is set), and also appended to logFile as
// hclog JSON lines when that is set. The returned close function closes
// the log file.
func NewLogger(name, logFile string, stderr io.Writer) (hclog.Logger, func() error, error) {
	level := hclog.LevelFromString(os.Getenv(EnvLogLevel))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	jsonOut := os.Getenv(EnvLogJSON) == "1"
	closeFn := func() error { return nil }
	var file io.Writer
	if logFile != "" {
		if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
			return nil, nil, fmt.Errorf("log file %s: %w", logFile, err)
		}
		f, err := os.OpenFile(logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("log file %s: %w", logFile, err)
		}
		file, closeFn = f, f.Close
	}
	opts := &hclog.LoggerOptions{Name: name, Level: level, Output: stderr, JSONFormat: jsonOut}
	if file == nil {
		return hclog.New(opts), closeFn, nil
	}
	// The log file gets its own sink in hclog JSON lines, whatever stderr
	// is, as docs/config.md promises for log_file: one parseable event log.
	il := hclog.NewInterceptLogger(opts)
	il.RegisterSink(hclog.NewSinkAdapter(&hclog.LoggerOptions{Name: name, Level: level, Output: file, JSONFormat: true}))
	var l hclog.Logger = il
	return l, closeFn, nil
}
