package pluginhost

import (
	"errors"

	"github.com/zhostdb/zhost/plugins/sdk"
)

// Errors of starting and running plugins. Each is wrapped with the plugin's
// name and, when the spec has one, its config location.
var (
	// ErrBinaryNotFound: the plugin's binary does not exist or is not
	// executable.
	ErrBinaryNotFound = errors.New("plugin binary not found")
	// ErrChecksum: the binary's sha256 differs from the configured one
	// (checked before every start), or the configured one is malformed.
	ErrChecksum = errors.New("plugin checksum mismatch")
	// ErrHandshake: the process started but did not complete the plugin
	// handshake: it printed something else on stdout, exited, answered
	// too late (StartTimeout), or speaks another protocol version.
	ErrHandshake = errors.New("plugin handshake failed")
	// ErrFailed: the plugin crashed too often in a row and is no longer
	// restarted. It matches sdk.ErrPluginUnavailable too.
	ErrFailed = errors.New("plugin failed")
	// ErrUnknownPlugin: no plugin of that name is configured.
	ErrUnknownPlugin = errors.New("unknown plugin")
	// ErrClosed: the manager was closed.
	ErrClosed = errors.New("plugin manager closed")
)

// ErrPluginUnavailable is sdk.ErrPluginUnavailable, re-exported for
// callers of this package: a call failed because the plugin process is not
// running.
var ErrPluginUnavailable = sdk.ErrPluginUnavailable
