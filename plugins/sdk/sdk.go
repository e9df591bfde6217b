package sdk

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
)

// Handshake is the go-plugin handshake every zhost plugin and the host
// share. The magic cookie never changes: it only tells a plugin binary that
// it was started by zhost (run by hand, it prints a hint and exits). The
// protocol version is negotiated from the versioned plugin sets.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "ZHOST_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "8f3b1c6e0a2d4f57b9e4c1d2a7f60e35zhost",
}

// ProtocolVersion is the newest plugin protocol this SDK speaks. A future
// protocol 2 is added as a new entry of the versioned plugin sets, so a
// host speaking 1 and 2 negotiates with plugins built against either SDK.
const ProtocolVersion = 1

// PluginKey is the name under which the zhost plugin is dispensed inside a
// plugin set.
const PluginKey = "zhost"

// MaxMessageSize bounds one gRPC message in either direction. It is far
// above gRPC's 4 MiB default so large records pass in one message; a
// transaction larger than this cannot cross the plugin boundary.
const MaxMessageSize = 512 << 20

// Environment variables the host sets for a plugin process.
const (
	// EnvLogLevel carries the host's log level (trace, debug, info, warn,
	// error), so a plugin does not produce lines the host would drop.
	EnvLogLevel = "ZHOST_PLUGIN_LOG_LEVEL"
	// EnvBusyPoll carries the host's busy-poll window ("50us"): how long
	// the plugin's reads from the host keep polling after a message
	// before they sleep. Serve applies it; unset means off.
	EnvBusyPoll = "ZHOST_PLUGIN_BUSY_POLL"
)

// Kind is what a plugin exports.
type Kind string

// Plugin kinds.
const (
	KindBackend Kind = "backend"
	KindMount   Kind = "mount"
)

// Backend is one storage backend type a plugin exports: "filestorage",
// "packless", or an external one.
type Backend interface {
	// Schema is the config schema of the storage block's body (its
	// attributes besides type and in_process). The host decodes the block
	// with it, so a mistake is reported at its line by `zhost validate`.
	// It must be safe to call at any time and cheap.
	Schema() hcl.Schema
	// Open opens the storage named name (the storage block's label) with
	// cfg, the block decoded with Schema. It may be called concurrently for
	// different names. Errors wrap the cause with context; a config
	// problem should wrap storage.ErrInvalid. The returned storage is
	// closed by the host (or, when the host goes away, by Serve).
	Open(ctx context.Context, name string, cfg hcl.Values) (storage.Storage, error)
}

// MountFunction is one mount function a plugin exports. It decides where
// the tree mounted at a path of the main tree lives.
type MountFunction interface {
	// ArgsSchema declares the args map of the mount block. Serve checks
	// every request against it (required args, types, unknown names)
	// before Resolve runs.
	ArgsSchema() hcl.Schema
	// Resolve returns the target of the mount. It may be called
	// concurrently. An error the operator must fix (a bad arg) should wrap
	// storage.ErrInvalid; its message is shown with the mount block's
	// line.
	Resolve(ctx context.Context, req MountRequest) (MountTarget, error)
}

// MountRequest is a call of a mount function.
type MountRequest struct {
	// Function is the function name from the mount block, so one
	// implementation may serve several names.
	Function string
	// Path is where the mount appears in the main tree, "/session_data".
	Path string
	// Args is the mount block's args map. Values are JSON-compatible:
	// string, bool, float64, nil, []any, map[string]any.
	Args map[string]any
}

// MountTarget is where a mounted tree lives.
type MountTarget struct {
	// Partition is the partition holding the tree.
	Partition string
	// Folder is the folder inside that partition's root, "session_data".
	Folder string
	// Server optionally names another storage server ("host:port"); empty
	// means the cluster's own server.
	Server string
}

// Describer is optionally implemented by a Backend or MountFunction to give
// the one-line description `zhost plugins` shows.
type Describer interface {
	Description() string
}

// Plugin is what a plugin binary serves: its identity and what it exports.
// One plugin may export several backend types and several mount functions.
type Plugin struct {
	// Name is the plugin's name, "builtin" or "custom-mount".
	Name string
	// Version is the plugin's own version, shown by `zhost plugins`.
	Version string
	// Backends maps backend type names to implementations.
	Backends map[string]Backend
	// Functions maps mount function names to implementations.
	Functions map[string]MountFunction
	// Config is the schema of the plugin block's own settings in
	// cluster.hcl (besides path, sha256, args and env); empty means none.
	Config hcl.Schema
	// Configure, if set, receives those settings, decoded with Config,
	// after every start and before any Open or Resolve. An error (wrap
	// storage.ErrInvalid for a bad setting) fails the plugin's start.
	Configure func(ctx context.Context, cfg hcl.Values) error
}

// Description is what a plugin says about itself (Describe).
type Description struct {
	Name            string
	Version         string
	ProtocolVersion int
	// Config is the schema of the plugin block's own settings.
	Config    hcl.Schema
	Backends  []BackendInfo
	Functions []FunctionInfo
}

// Kinds returns the kinds the description covers, backend first.
func (d Description) Kinds() []Kind {
	var out []Kind
	if len(d.Backends) > 0 {
		out = append(out, KindBackend)
	}
	if len(d.Functions) > 0 {
		out = append(out, KindMount)
	}
	return out
}

// Backend returns the backend type called name.
func (d Description) Backend(name string) (BackendInfo, bool) {
	for _, b := range d.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return BackendInfo{}, false
}

// Function returns the mount function called name.
func (d Description) Function(name string) (FunctionInfo, bool) {
	for _, f := range d.Functions {
		if f.Name == name {
			return f, true
		}
	}
	return FunctionInfo{}, false
}

// BackendInfo describes one backend type.
type BackendInfo struct {
	Name        string
	Description string
	Schema      hcl.Schema
}

// FunctionInfo describes one mount function.
type FunctionInfo struct {
	Name        string
	Description string
	Args        hcl.Schema
}

// Describe returns the description of p, sorted by name.
func (p *Plugin) Describe() Description {
	d := Description{Name: p.Name, Version: p.Version, ProtocolVersion: ProtocolVersion, Config: p.Config}
	for _, n := range sortedKeys(p.Backends) {
		b := p.Backends[n]
		d.Backends = append(d.Backends, BackendInfo{Name: n, Description: describe(b), Schema: b.Schema()})
	}
	for _, n := range sortedKeys(p.Functions) {
		f := p.Functions[n]
		d.Functions = append(d.Functions, FunctionInfo{Name: n, Description: describe(f), Args: f.ArgsSchema()})
	}
	return d
}

func describe(v any) string {
	if d, ok := v.(Describer); ok {
		return d.Description()
	}
	return ""
}

// ErrPluginUnavailable: the plugin process is not running (it crashed,
// was stopped, or was marked failed after repeated crashes). Calls in
// flight when it exits fail with an error matching it and naming the
// plugin.
var ErrPluginUnavailable = errors.New("plugin unavailable")

// ErrUnknownBackend: the plugin exports no backend type of that name.
// ErrUnknownFunction: the plugin exports no mount function of that name.
var (
	ErrUnknownBackend  = errors.New("unknown backend type")
	ErrUnknownFunction = errors.New("unknown mount function")
)
