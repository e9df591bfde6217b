package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hcl2 "github.com/hashicorp/hcl/v2"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/builtin"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// BuiltinName is the name of the plugin carrying the built-in backends and
// mount functions, served by the zhost binary itself.
const BuiltinName = builtin.Name

// BinaryPrefix is the file name prefix searched in the plugin directory:
// plugin "NAME" is the binary zhost-plugin-NAME.
const BinaryPrefix = "zhost-plugin-"

// DefaultHangTimeout is Options.HangTimeout's default.
const DefaultHangTimeout = time.Minute

// Options configures a Manager. Zero values take the documented defaults.
type Options struct {
	// Logger is the host's logger. Each plugin logs under
	// Logger.Named(plugin name), at the level the plugin logged at; the
	// plugin process is told this logger's level. Default: no logging.
	Logger hclog.Logger
	// ZhostPath is the binary that serves the built-in plugin
	// (`zhost plugin serve builtin`). Default: os.Executable().
	ZhostPath string
	// PluginDir is searched for zhost-plugin-NAME when a plugin spec has no
	// path. Relative to the working directory.
	PluginDir string
	// StartTimeout bounds a plugin's start: process start and handshake,
	// and its Describe answer (default 20s).
	StartTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before restarting a crashed
	// plugin. It doubles on each crash (defaults 200ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// MaxCrashes is how many crashes in a row mark a plugin failed
	// instead of restarting it again (default 5). A plugin that stayed up
	// for StableAfter (default 1m) has its count reset.
	MaxCrashes  int
	StableAfter time.Duration
	// BusyPoll is how long reads on plugin connections keep polling the
	// socket after a message before they sleep, in the host and (told
	// through sdk.EnvBusyPoll) in the plugin: CPU for latency. 0: off.
	BusyPoll time.Duration
	// HangTimeout bounds a storage call the host makes without a deadline
	// of its own (the server's Vote, Finish and Abort, Undo, LastTid): a
	// plugin that has not answered it within HangTimeout is taken as hung
	// (a deadlocked backend, an fsync stuck on a dead disk) and killed,
	// and the crash path runs (it counts as a crash). Default 1m: longer
	// than any legitimate fsync or lock wait, and than the server's
	// default commit-lock wait. Negative: no bound.
	HangTimeout time.Duration
	// BaseDir is the directory of the config file: an external plugin's
	// settings given as written (see hcl.Schema.Normalize) have their
	// relative paths resolved against it. Empty: the working directory.
	BaseDir string
}

func (o *Options) defaults() error {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.ZhostPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locate the zhost binary for the built-in plugin: %w", err)
		}
		o.ZhostPath = exe
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 20 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.MaxCrashes <= 0 {
		o.MaxCrashes = 5
	}
	if o.StableAfter <= 0 {
		o.StableAfter = time.Minute
	}
	if o.HangTimeout == 0 {
		o.HangTimeout = DefaultHangTimeout
	}
	return nil
}

// Spec describes one plugin the host may start: a `plugin "NAME" { path,
// sha256 }` block, a name found in the plugin directory, or the built-in.
type Spec struct {
	// Name is the plugin's name from the config.
	Name string
	// Path is the plugin binary. Empty: PluginDir/zhost-plugin-NAME (or,
	// for BuiltinName, the zhost binary).
	Path string
	// SHA256 is the expected hex sha256 of the binary; empty means no
	// check. It is checked before every start, restarts included.
	SHA256 string
	// Args are extra arguments for the binary; Env is added to its
	// environment.
	Args []string
	Env  map[string]string
	// Config is the plugin block's own settings, passed to the plugin
	// (Configure) after every start.
	Config hcl.Values
	// Range, or else Where ("cluster.hcl:12"), is the config location
	// errors about this plugin point at.
	Range *hcl2.Range
	Where string
}

// Location is the config location errors about the plugin point at,
// "cluster.hcl:12", or "".
func (s Spec) Location() string {
	if s.Range != nil && s.Range.Filename != "" {
		return fmt.Sprintf("%s:%d", s.Range.Filename, s.Range.Start.Line)
	}
	return s.Where
}

// label is how errors name the plugin: `plugin "NAME" (cluster.hcl:12)`.
func (s Spec) label() string {
	if w := s.Location(); w != "" {
		return fmt.Sprintf("plugin %q (%s)", s.Name, w)
	}
	return fmt.Sprintf("plugin %q", s.Name)
}

// Manager owns the plugin processes of one host: it starts them on first
// use, supervises and restarts them, and stops them all on Close. The
// built-in plugin is always known; others are added with Add. All methods
// are safe for concurrent use.
type Manager struct {
	opts Options

	mu       sync.Mutex
	plugins  map[string]*Plugin
	storages map[*hostStorage]struct{}
	inproc   map[storage.Storage]struct{}
	closed   bool
	closing  chan struct{}
	wg       sync.WaitGroup
}

// NewManager returns a manager with the built-in plugin registered. It
// starts nothing.
func NewManager(opts Options) (*Manager, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	m := &Manager{
		opts:     opts,
		plugins:  map[string]*Plugin{},
		storages: map[*hostStorage]struct{}{},
		inproc:   map[storage.Storage]struct{}{},
		closing:  make(chan struct{}),
	}
	m.plugins[BuiltinName] = newPlugin(m, Spec{Name: BuiltinName})
	return m, nil
}

// Add registers an external plugin. It checks what can be checked without
// starting it: the binary exists and the sha256 is well formed (the
// checksum itself is checked at every start). The error names the plugin
// and its config location.
func (m *Manager) Add(spec Spec) error {
	if spec.Name == "" {
		return fmt.Errorf("plugin with an empty name (%s): %w", spec.Location(), ErrUnknownPlugin)
	}
	if spec.Name == BuiltinName {
		return fmt.Errorf("%s: the name %q is reserved for the built-in plugin", spec.label(), BuiltinName)
	}
	if _, err := m.resolvePath(spec); err != nil {
		return err
	}
	if spec.SHA256 != "" {
		if _, err := parseSHA256(spec.SHA256); err != nil {
			return fmt.Errorf("%s: %w", spec.label(), err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("%s: %w", spec.label(), ErrClosed)
	}
	if old, dup := m.plugins[spec.Name]; dup {
		return fmt.Errorf("%s: duplicate plugin; first defined at %s", spec.label(), old.spec.Location())
	}
	m.plugins[spec.Name] = newPlugin(m, spec)
	return nil
}

// resolvePath returns the binary and arguments of a plugin.
func (m *Manager) resolvePath(spec Spec) (string, error) {
	path := spec.Path
	if spec.Name == BuiltinName {
		path = m.opts.ZhostPath
	}
	if path == "" {
		if m.opts.PluginDir == "" {
			return "", fmt.Errorf("%s: no path given and no plugin_dir to search for %s%s: %w", spec.label(), BinaryPrefix, spec.Name, ErrBinaryNotFound)
		}
		path = filepath.Join(m.opts.PluginDir, BinaryPrefix+spec.Name)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", spec.label(), path, errors.Join(ErrBinaryNotFound, err))
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s: %s is not an executable file: %w", spec.label(), path, ErrBinaryNotFound)
	}
	return path, nil
}

// Plugin returns the plugin called name.
func (m *Manager) Plugin(name string) (*Plugin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("plugin %q: %w", name, ErrClosed)
	}
	p, ok := m.plugins[name]
	if !ok {
		return nil, fmt.Errorf("plugin %q: %w", name, ErrUnknownPlugin)
	}
	return p, nil
}

// Names returns the names of every registered plugin, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.plugins))
	for n := range m.plugins {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Describe starts the plugin if needed and returns what it exports.
func (m *Manager) Describe(ctx context.Context, name string) (sdk.Description, error) {
	p, err := m.Plugin(name)
	if err != nil {
		return sdk.Description{}, err
	}
	return p.Describe(ctx)
}

// StorageSpec names a storage to open: a storage block.
type StorageSpec struct {
	// Plugin is the plugin serving the backend type; empty means the
	// built-in plugin.
	Plugin string
	// Type is the backend type, "filestorage".
	Type string
	// Name is the storage block's label.
	Name string
	// Config is the block's body decoded with the type's schema.
	Config hcl.Values
	// InProcess runs a built-in backend inside the host instead of in a
	// plugin process.
	InProcess bool
}

// OpenStorage opens a storage. Through a plugin, the storage survives
// plugin restarts: after a crash it is reopened in the new process on its
// next call (transactions open at the crash fail with
// ErrPluginUnavailable). The manager closes every storage it opened on
// Close; closing it earlier is fine.
func (m *Manager) OpenStorage(ctx context.Context, spec StorageSpec) (storage.Storage, error) {
	pname := spec.Plugin
	if pname == "" {
		pname = BuiltinName
	}
	if spec.InProcess {
		if pname != BuiltinName {
			return nil, fmt.Errorf("storage %q: in_process is only for built-in backend types, not plugin %q", spec.Name, pname)
		}
		b, ok := builtin.Backends(m.opts.Logger.Named(BuiltinName))[spec.Type]
		if !ok {
			return nil, fmt.Errorf("storage %q: %w %q", spec.Name, sdk.ErrUnknownBackend, spec.Type)
		}
		st, err := b.Open(ctx, spec.Name, spec.Config)
		if err != nil {
			return nil, fmt.Errorf("open storage %q (type %s, in process): %w", spec.Name, spec.Type, err)
		}
		m.mu.Lock()
		closed := m.closed
		if !closed {
			m.inproc[st] = struct{}{}
		}
		m.mu.Unlock()
		if closed {
			_ = st.Close()
			return nil, fmt.Errorf("open storage %q: %w", spec.Name, ErrClosed)
		}
		return st, nil
	}
	p, err := m.Plugin(pname)
	if err != nil {
		return nil, fmt.Errorf("open storage %q: %w", spec.Name, err)
	}
	desc, err := p.Describe(ctx)
	if err != nil {
		return nil, fmt.Errorf("open storage %q: %w", spec.Name, err)
	}
	typ := spec.Type
	if _, ok := desc.Backend(typ); !ok {
		// cluster.hcl names an external plugin's storage by the plugin's
		// name; a plugin exporting one backend type serves it under any.
		if pname != BuiltinName && len(desc.Backends) == 1 {
			typ = desc.Backends[0].Name
		} else {
			return nil, fmt.Errorf("open storage %q: %s exports no backend type %q (it has %v): %w",
				spec.Name, p.spec.label(), spec.Type, backendNames(desc), sdk.ErrUnknownBackend)
		}
	}
	cfg := spec.Config
	if pname != BuiltinName {
		// The config may hold the settings as written (`zhost run` loads
		// it without asking plugins for their schemas): the backend gets
		// them decoded, as `zhost validate` checks them.
		b, _ := desc.Backend(typ)
		if cfg, err = b.Schema.Normalize(spec.Config, m.opts.BaseDir, "path", "read_only"); err != nil {
			return nil, fmt.Errorf("open storage %q (%s, type %s): %w", spec.Name, p.spec.label(), typ, errors.Join(storage.ErrInvalid, err))
		}
	}
	hs := &hostStorage{p: p, typ: typ, name: spec.Name, cfg: cfg}
	if _, err := hs.remote(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	closed := m.closed
	if !closed {
		m.storages[hs] = struct{}{}
	}
	m.mu.Unlock()
	if closed {
		_ = hs.Close()
		return nil, fmt.Errorf("open storage %q: %w", spec.Name, ErrClosed)
	}
	return hs, nil
}

func backendNames(d sdk.Description) []string {
	out := make([]string, len(d.Backends))
	for i, b := range d.Backends {
		out[i] = b.Name
	}
	return out
}

func (m *Manager) forget(hs *hostStorage) {
	m.mu.Lock()
	delete(m.storages, hs)
	m.mu.Unlock()
}

// Resolve runs mount function req.Function of plugin pluginName (empty:
// the built-in). Errors name the plugin and function; an operator mistake
// in the args matches storage.ErrInvalid.
func (m *Manager) Resolve(ctx context.Context, pluginName string, req sdk.MountRequest) (sdk.MountTarget, error) {
	if pluginName == "" {
		pluginName = BuiltinName
	}
	p, err := m.Plugin(pluginName)
	if err != nil {
		return sdk.MountTarget{}, err
	}
	c, _, err := p.client(ctx)
	if err != nil {
		return sdk.MountTarget{}, err
	}
	if pluginName != BuiltinName {
		// Args as written (see OpenStorage) are decoded with the
		// function's schema; the plugin reports an unknown function.
		p.mu.Lock()
		f, ok := p.desc.Function(req.Function)
		p.mu.Unlock()
		if ok {
			args, err := f.Args.Normalize(req.Args, m.opts.BaseDir)
			if err != nil {
				return sdk.MountTarget{}, fmt.Errorf("mount %s: %s: mount function %q: %w", req.Path, p.spec.label(), req.Function, errors.Join(storage.ErrInvalid, err))
			}
			req.Args = args
		}
	}
	t, err := c.Resolve(ctx, req)
	if err != nil {
		return sdk.MountTarget{}, fmt.Errorf("mount %s: %w", req.Path, err)
	}
	return t, nil
}

// Status is a snapshot of one plugin's state, for `zhost plugins` and
// node status pages.
type Status struct {
	Name string
	// Path is the binary (empty if not found).
	Path string
	// State is "stopped", "running", "restarting", "failed" or "closed".
	State string
	// Pid is the process id while running.
	Pid int
	// Restarts counts restarts after crashes.
	Restarts int
	// LastError is the last start or crash error.
	LastError string
}

// Statuses returns the state of every plugin, sorted by name.
func (m *Manager) Statuses() []Status {
	var out []Status
	for _, n := range m.Names() {
		p, err := m.Plugin(n)
		if err != nil {
			continue
		}
		out = append(out, p.Status())
	}
	return out
}

// Close stops everything, in this order: storages opened through plugins
// are closed (so backends flush and unlock), storages opened in process
// are closed, then every plugin process is asked to exit and killed if it
// has not within 2 s. Calls made after Close fail with ErrClosed. Close
// twice returns nil. The error joins every close error.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closing)
	sts := make([]*hostStorage, 0, len(m.storages))
	for s := range m.storages {
		sts = append(sts, s)
	}
	inproc := make([]storage.Storage, 0, len(m.inproc))
	for s := range m.inproc {
		inproc = append(inproc, s)
	}
	plugins := make([]*Plugin, 0, len(m.plugins))
	for _, p := range m.plugins {
		plugins = append(plugins, p)
	}
	m.mu.Unlock()

	var errs []error
	for _, s := range sts {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range inproc {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	var wg sync.WaitGroup
	for _, p := range plugins {
		wg.Go(p.stop)
	}
	wg.Wait()
	m.wg.Wait()
	return errors.Join(errs...)
}
