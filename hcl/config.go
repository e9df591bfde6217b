package hcl

import (
	"time"

	hcl2 "github.com/hashicorp/hcl/v2"
)

// Config is a decoded and validated cluster.hcl. It is data only: nothing in
// it has been opened or started. Relative paths are already resolved
// against the config file's directory and every default is filled in (the
// defaults are listed in docs/config.md). A Config returned without error
// diagnostics is safe to use as-is; it is not modified by this package
// afterwards and may be read from several goroutines.
type Config struct {
	// Filename is the config file's path as given to Load or Parse.
	Filename string
	// Dir is the absolute directory relative paths were resolved against.
	Dir string
	// PluginDir is where a plugin block without a path finds its binary.
	PluginDir string
	// PluginHangTimeout is how long a storage plugin may leave a call
	// without a deadline of its own unanswered before the host kills it
	// as hung (pluginhost.Options.HangTimeout).
	PluginHangTimeout time.Duration

	Machines   []*Machine
	Server     *Server // nil when the file declares no server
	Storages   []*Storage
	Partitions []*Partition
	Mounts     []*Mount
	Sessions   *Sessions // nil when the file declares no sessions block
	Clients    []*Client
	Balancers  []*Balancer
	Plugins    []*Plugin
}

// Block is what every named block carries: its name and where it was
// written, so later layers can report a run-time problem at a config line.
type Block struct {
	// Name is the block's label ("main" in storage "main").
	Name string
	// DeclRange is the block header: its type and labels.
	DeclRange hcl2.Range
	// AttrRanges holds the range of each attribute's value, for the
	// attributes written in the file (not the defaulted ones).
	AttrRanges map[string]hcl2.Range
}

// RangeOf returns the range of attribute name's value, or the block header
// when the attribute was not written.
func (b *Block) RangeOf(name string) hcl2.Range {
	if r, ok := b.AttrRanges[name]; ok {
		return r
	}
	return b.DeclRange
}

// Machine is one machine of a cluster spread over several.
type Machine struct {
	Block
	// Address is the host name or IP other machines reach it at.
	Address string
}

// NodeKind names the three kinds of node.
type NodeKind string

// The node kinds.
const (
	KindServer   NodeKind = "server"
	KindClient   NodeKind = "client"
	KindBalancer NodeKind = "balancer"
)

// Node is what the server, every client and every balancer have in common:
// one supervised process of the cluster.
type Node struct {
	Block
	Kind NodeKind
	// Listen is the address the node binds, "host:port".
	Listen string
	// Advertise is the address other nodes dial, "host:port": the
	// advertise attribute, or Listen with an empty or wildcard host
	// replaced by the machine's address (127.0.0.1 without a machine).
	Advertise string
	// Machine names the machine block; empty for the machine `zhost run`
	// is started on.
	Machine string
	// PidFile is absolute; by default var/NAME.pid beside the config.
	PidFile string
	// LogFile is absolute, or empty for standard error.
	LogFile string
}

// Server is the storage server node.
type Server struct {
	Node
	CommitTimeout       time.Duration
	TransactionTimeout  time.Duration
	InvalidationLogSize int64
	MaxMessageSize      int64
	// BusyPoll is how long reads poll before they sleep; 0: off.
	BusyPoll time.Duration
	TLS      *ServerTLS // nil: plain TCP
}

// ServerTLS is the server's TLS settings; paths are absolute.
type ServerTLS struct {
	DeclRange         hcl2.Range
	CertFile          string
	KeyFile           string
	ClientCAFile      string
	RequireClientCert bool
}

// Storage is one backend instance.
type Storage struct {
	Block
	// Type is a built-in type name or the name of a plugin block.
	Type string
	// Plugin is the plugin block's name when Type names one, else empty.
	Plugin string
	// Path is absolute, or empty if not set.
	Path      string
	ReadOnly  bool
	InProcess bool
	// Config is the body decoded with the storage type's Schema. It also
	// holds path (absolute) and read_only, so a backend sees them. When no
	// Schema is known (a plugin whose schema the caller could not supply)
	// every extra attribute is decoded as written.
	Config Values
}

// Partition is a storage exposed by the server under a name.
type Partition struct {
	Block
	Storage  string
	ReadOnly bool
}

// Mount is a folder of the main tree whose contents live in another
// partition.
type Mount struct {
	Block
	// Plugin is "builtin", a plugin block's name, or empty when the mount
	// names a plugin binary by path (PluginPath).
	Plugin string
	// PluginPath is the absolute path of the plugin binary: the plugin
	// block's path, or the path written in the mount; empty for builtin.
	PluginPath string
	Function   string
	// Path is where the mount appears in the main tree: absolute, clean.
	Path string
	// Args is JSON-compatible: string, float64, bool, nil, []any and
	// map[string]any. When the function declares a Schema, Args holds the
	// Schema-decoded values (see Values) including defaults.
	Args map[string]any
}

// Partition returns the partition the mount's args name, if any.
func (m *Mount) Partition() string {
	s, _ := m.Args["partition"].(string)
	return s
}

// SameSite values.
const (
	SameSiteLax    = "lax"
	SameSiteStrict = "strict"
	SameSiteNone   = "none"
)

// Secure values.
const (
	SecureAuto   = "auto"
	SecureAlways = "always"
	SecureNever  = "never"
)

// Sessions is the shared browser session setup.
type Sessions struct {
	DeclRange  hcl2.Range
	AttrRanges map[string]hcl2.Range
	// Container is the transient container's path in the main tree.
	Container string
	// Mount is the name of the mount the container lives under.
	Mount   string
	Timeout time.Duration
	// Lifetime is the absolute limit; 0 means none.
	Lifetime      time.Duration
	Cookie        string
	CookiePath    string
	CookieDomain  string
	SameSite      string
	Secure        string
	Limit         int64
	Refresh       time.Duration
	SweepInterval time.Duration
	OnAdd         string
	OnDelete      string
}

// Client is an application node.
type Client struct {
	Node
	// Server is the storage server address to dial.
	Server         string
	Partition      string
	CacheSize      int64
	ConnectTimeout time.Duration
	// BusyPoll is how long reads poll before they sleep; 0: off.
	BusyPoll time.Duration
	TLS      *ClientTLS // nil: plain TCP
}

// ClientTLS is a client's TLS settings; paths are absolute or empty.
type ClientTLS struct {
	DeclRange  hcl2.Range
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
}

// Balancing policies.
const (
	PolicyRoundRobin = "round_robin"
	PolicyLeastConn  = "least_conn"
)

// Balancer is the HTTP front end.
type Balancer struct {
	Node
	PublicURL string
	// Clients names the client blocks, in the order written.
	Clients           []string
	Policy            string
	HealthCheck       HealthCheck
	MaxConnsPerClient int64
	QueueTimeout      time.Duration
	TrustedProxies    []string
	AccessLog         string
	DrainTimeout      time.Duration
}

// HealthCheck is how a balancer checks its clients.
type HealthCheck struct {
	Path     string
	Interval time.Duration
	Timeout  time.Duration
	Rise     int64
	Fall     int64
}

// Plugin is an external plugin binary.
type Plugin struct {
	Block
	// Path is the absolute path of the binary.
	Path string
	// SHA256 is lower-case hex, or empty when not checked.
	SHA256 string
	Args   []string
	Env    map[string]string
	// Config is the body decoded with the plugin's declared config Schema
	// (every extra attribute as written when no Schema is known).
	Config Values
}

// Storage returns the storage named name, or nil.
func (c *Config) Storage(name string) *Storage {
	for _, s := range c.Storages {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Partition returns the partition named name, or nil.
func (c *Config) Partition(name string) *Partition {
	for _, p := range c.Partitions {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Client returns the client named name, or nil.
func (c *Config) Client(name string) *Client {
	for _, cl := range c.Clients {
		if cl.Name == name {
			return cl
		}
	}
	return nil
}

// Plugin returns the plugin named name, or nil.
func (c *Config) Plugin(name string) *Plugin {
	for _, p := range c.Plugins {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Machine returns the machine named name, or nil.
func (c *Config) Machine(name string) *Machine {
	for _, m := range c.Machines {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Mount returns the mount named name, or nil.
func (c *Config) Mount(name string) *Mount {
	for _, m := range c.Mounts {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Nodes returns every node: the server first, then the clients and the
// balancers in file order. Node names are unique across kinds.
func (c *Config) Nodes() []*Node {
	var out []*Node
	if c.Server != nil {
		out = append(out, &c.Server.Node)
	}
	for _, cl := range c.Clients {
		out = append(out, &cl.Node)
	}
	for _, b := range c.Balancers {
		out = append(out, &b.Node)
	}
	return out
}

// Node returns the node named name, or nil.
func (c *Config) Node(name string) *Node {
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}
