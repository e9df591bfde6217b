package hcl

// This file is the one declaration of the cluster.hcl language: every block
// and attribute, its type, default, bounds and documentation. The decoder
// reads it, and docs/config.md's reference section is generated from it
// (TestConfigDocs keeps the two in step).

// kind is how an attribute's expression is decoded.
type kind int

const (
	kString     kind = iota // string
	kNumber                 // float64
	kInt                    // int64, a whole number
	kBool                   // bool
	kDuration               // time.Duration, written "20m"
	kSize                   // int64 bytes, written "64MiB"
	kPath                   // string, resolved against the config directory
	kAddress                // "host:port"
	kHost                   // a host name or IP, no port
	kURL                    // absolute http or https URL
	kRef                    // traversal to a block: storage.main
	kRefList                // list of traversals: [client.app1, client.app2]
	kStringList             // []string
	kStringMap              // map[string]string
	kObject                 // JSON-compatible map[string]any
	kSHA256                 // 64 hex digits
	kCIDRList               // []string of CIDR prefixes or IPs
	kPluginRef              // "builtin", a plugin name or plugin.NAME
	kAny                    // decoded by the caller; only its presence is recorded
)

// attrSpec declares one attribute of a built-in block.
type attrSpec struct {
	Name     string
	Kind     kind
	Required bool
	// Default is the HCL expression used when the attribute is absent; it
	// is decoded exactly like a written value.
	Default string
	// DefaultDoc documents a default that depends on other settings (when
	// Default is empty).
	DefaultDoc string
	// Min and Max bound durations, sizes and numbers; written like a value
	// ("1s", "1MiB", "0").
	Min, Max string
	// Enum lists the allowed values of a string.
	Enum []string
	// Ref is the block type a kRef or kRefList points at.
	Ref         string
	Description string
	// Example is an HCL expression for the docs.
	Example string

	// defaultValue is a default already in decoded form (declared
	// Schemas); it wins over Default.
	defaultValue any
	hasDefault   bool
}

// blockSpec declares one block type.
type blockSpec struct {
	Name string
	// Label names the block's label ("name"); empty for unlabeled blocks.
	Label string
	// Many allows more than one block of this type (labeled blocks only).
	Many bool
	// Open blocks carry extra attributes decoded with a declared Schema
	// (storage types, plugins).
	Open        bool
	Description string
	Example     string
	Attrs       []attrSpec
	Blocks      []*blockSpec
}

func (b *blockSpec) attr(name string) *attrSpec {
	for i := range b.Attrs {
		if b.Attrs[i].Name == name {
			return &b.Attrs[i]
		}
	}
	return nil
}

func (b *blockSpec) block(name string) *blockSpec {
	for _, c := range b.Blocks {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Attributes shared by every node block (server, client, balancer).
func nodeAttrs(kindName string) []attrSpec {
	return []attrSpec{
		{Name: "machine", Kind: kRef, Ref: "machine",
			DefaultDoc:  "none: the machine `zhost run` is started on",
			Description: "The machine this " + kindName + " runs on, for a file that describes several machines. Nodes on one machine must not share a port; nodes on other machines reach this one at its advertised address.",
			Example:     "machine.db1"},
		{Name: "advertise", Kind: kAddress,
			DefaultDoc:  "`listen`, with an empty or wildcard host replaced by the machine's address (127.0.0.1 without a machine)",
			Description: "The address other nodes dial to reach this " + kindName + ", when it differs from `listen` (NAT, a wildcard listen address).",
			Example:     `"10.0.0.10:9100"`},
		{Name: "pid_file", Kind: kPath, DefaultDoc: "`var/NAME.pid`",
			Description: "Where the node writes its process id while it runs.",
			Example:     `"var/` + kindName + `.pid"`},
		{Name: "log_file", Kind: kPath, DefaultDoc: "none: logs go to standard error (and from there to `zhost run`'s log)",
			Description: "Where the node appends its log (hclog JSON lines).",
			Example:     `"var/` + kindName + `.log"`},
	}
}

// spec is the top level of cluster.hcl.
var spec = &blockSpec{
	Name: "",
	Attrs: []attrSpec{
		{Name: "plugin_dir", Kind: kPath, Default: `"plugins"`,
			Description: "Where a `plugin` block without a `path` finds its binary, as `zhost-plugin-NAME`.",
			Example:     `"/usr/lib/zhost/plugins"`},
		{Name: "plugin_hang_timeout", Kind: kDuration, Default: `"1m"`, Min: "1s", Max: "24h",
			Description: "How long a storage plugin may leave a call unanswered that has no deadline of its own (a commit's vote, finish or abort, an undo) before it is taken as hung (a deadlocked backend, an fsync stuck on a dead disk): the host logs it, kills the plugin process and restarts it as after a crash, and the call fails. Keep it longer than any legitimate fsync or lock wait.",
			Example:     `"5m"`},
	},
	Blocks: []*blockSpec{machineSpec, serverSpec, storageSpec, partitionSpec, mountSpec, sessionsSpec, clientSpec, balancerSpec, pluginSpec},
}

var machineSpec = &blockSpec{
	Name: "machine", Label: "name", Many: true,
	Description: "A machine of a cluster that spans several machines. Every machine runs the same file; `zhost run --node NAME` starts one node there. Node blocks name their machine with `machine = machine.NAME`; nodes without one run on the machine `zhost run` is started on.",
	Example:     "machine \"db1\" {\n  address = \"10.0.0.10\"\n}",
	Attrs: []attrSpec{
		{Name: "address", Kind: kHost, Required: true,
			Description: "The host name or IP address other machines reach this one at. Two machines with the same address are one host for the port clash check.",
			Example:     `"10.0.0.10"`},
	},
}

var tlsServerSpec = &blockSpec{
	Name:        "tls",
	Description: "Serve the storage protocol over TLS. Clients of a TLS server need their own `tls` block.",
	Example:     "tls {\n  cert_file = \"tls/server.pem\"\n  key_file  = \"tls/server-key.pem\"\n}",
	Attrs: []attrSpec{
		{Name: "cert_file", Kind: kPath, Required: true, Description: "PEM certificate chain of the server.", Example: `"tls/server.pem"`},
		{Name: "key_file", Kind: kPath, Required: true, Description: "PEM private key of the server.", Example: `"tls/server-key.pem"`},
		{Name: "client_ca_file", Kind: kPath, DefaultDoc: "none", Description: "PEM bundle of the authorities client certificates must chain to.", Example: `"tls/clients-ca.pem"`},
		{Name: "require_client_cert", Kind: kBool, Default: "false", Description: "Refuse clients without a certificate signed by `client_ca_file`.", Example: "true"},
	},
}

var serverSpec = &blockSpec{
	Name: "server", Label: "name",
	Description: "The storage server node: serves every partition on one listen address, orders commits and sends invalidations. At most one per file; required when the file declares storages.",
	Example:     "server \"zeo\" {\n  listen   = \"127.0.0.1:9100\"\n  pid_file = \"var/server.pid\"\n  log_file = \"var/events.log\"\n}",
	Attrs: append([]attrSpec{
		{Name: "listen", Kind: kAddress, Required: true, Description: "The address the server listens on, `host:port`.", Example: `"127.0.0.1:9100"`},
		{Name: "commit_timeout", Kind: kDuration, Default: `"30s"`, Min: "100ms", Max: "1h",
			Description: "How long a client may hold the commit lock of a partition between vote and finish before the server aborts its transaction.", Example: `"10s"`},
		{Name: "transaction_timeout", Kind: kDuration, Default: `"5m"`, Min: "1s", Max: "24h",
			Description: "How long a transaction may stay open between begin and finish.", Example: `"1m"`},
		{Name: "invalidation_log_size", Kind: kInt, Default: "10000", Min: "0", Max: "10000000",
			Description: "How many recent transactions' invalidations the server remembers, so a client that reconnects can revalidate its cache instead of dropping it.", Example: "50000"},
		{Name: "max_message_size", Kind: kSize, Default: `"64MiB"`, Min: "1MiB", Max: "1GiB",
			Description: "The largest protocol message the server accepts or sends; bounds the largest record.", Example: `"256MiB"`},
		{Name: "busy_poll", Kind: kDuration, Default: `"50us"`, Min: "0s", Max: "1ms",
			Description: "The most that the server's reads (from clients and from its storage plugins, on both ends) poll the socket for the next message before they sleep. Trades CPU for latency on machines whose idle CPUs halt (most VMs): a cache miss between processes drops from about 40 µs to about 15 µs on the reference VM. The window adapts per connection: it stays open while polling catches the messages, and closes after a few long waits (a connection that waits for fsyncs or for users stops polling) or when the polling thread loses its CPU to other work, so an idle, slow or CPU-starved connection costs next to nothing. 0 turns it off; with one CPU (GOMAXPROCS 1) it has no effect, as a polling read would keep the scheduler from seeing other connections' data. See docs/performance.md.", Example: `"0s"`},
	}, nodeAttrs("server")...),
	Blocks: []*blockSpec{tlsServerSpec},
}

var storageSpec = &blockSpec{
	Name: "storage", Label: "name", Many: true, Open: true,
	Description: "One storage backend instance. Besides the attributes below, the body holds the settings the storage type declares (see [Storage types](#storage-types)); a mistake in them is reported at its line.",
	Example:     "storage \"main\" {\n  type = \"filestorage\"\n  path = \"var/Data.fs\"\n}",
	Attrs: []attrSpec{
		{Name: "type", Kind: kString, Required: true,
			Description: "The backend: a built-in type (`filestorage`, `packless`) or the name of a `plugin` block that provides a storage.", Example: `"packless"`},
		{Name: "path", Kind: kPath, DefaultDoc: "none; required by the built-in types",
			Description: "Where the backend keeps its data. Two storages cannot share a path.", Example: `"var/Data.fs"`},
		{Name: "read_only", Kind: kBool, Default: "false",
			Description: "Open the backend read-only; commits to its partition fail.", Example: "true"},
		{Name: "in_process", Kind: kBool, Default: "false",
			Description: "Run a built-in backend inside the server process instead of as a plugin subprocess (faster, but a backend crash takes the server down).", Example: "true"},
	},
}

var partitionSpec = &blockSpec{
	Name: "partition", Label: "name", Many: true,
	Description: "A storage exposed by the server under a name; clients and mounts open partitions by name. A storage backs at most one partition.",
	Example:     "partition \"main\" {\n  storage = storage.main\n}",
	Attrs: []attrSpec{
		{Name: "storage", Kind: kRef, Ref: "storage", Required: true, Description: "The storage behind the partition.", Example: "storage.main"},
		{Name: "read_only", Kind: kBool, Default: "false", Description: "Refuse commits to this partition.", Example: "true"},
	},
}

var mountSpec = &blockSpec{
	Name: "mount", Label: "name", Many: true,
	Description: "A folder of the main tree whose contents live in another partition. A mount function (from a plugin) decides which partition and which folder inside it; `args` is passed to it.",
	Example:     "mount \"session_data\" {\n  plugin   = \"builtin\"\n  function = \"mount_partition\"\n  path     = \"/session_data\"\n  args     = { partition = \"sessiondata\", folder = \"session_data\" }\n}",
	Attrs: []attrSpec{
		{Name: "plugin", Kind: kPluginRef, Default: `"builtin"`,
			Description: "Who provides the mount function: `\"builtin\"`, the name of a `plugin` block (or `plugin.NAME`), or the path of a plugin binary.", Example: "plugin.custom"},
		{Name: "function", Kind: kString, Required: true, Description: "The mount function the plugin exports.", Example: `"mount_partition"`},
		{Name: "path", Kind: kString, Required: true,
			Description: "Where the mounted folder appears in the main tree: absolute, clean, not `/`, and not inside another mount.", Example: `"/session_data"`},
		{Name: "args", Kind: kObject, Default: "{}",
			Description: "Arguments for the mount function: an object of JSON-compatible values, checked against the function's declared schema when it has one. A `partition` key must name a declared partition.", Example: `{ partition = "sessiondata", folder = "session_data" }`},
	},
}

var sessionsSpec = &blockSpec{
	Name:        "sessions",
	Description: "Browser sessions shared by every client: a browser id cookie names a session, a transient container under a mount holds it, and it expires when idle. At most one.",
	Example:     "sessions {\n  container = \"/session_data/sessions\"\n  timeout   = \"20m\"\n  cookie    = \"_zhost_id\"\n}",
	Attrs: []attrSpec{
		{Name: "container", Kind: kString, Required: true,
			Description: "Path of the transient container in the main tree, created if missing. It must be under a mount whose partition exists and is writable.", Example: `"/session_data/sessions"`},
		{Name: "timeout", Kind: kDuration, Default: `"20m"`, Min: "1s", Max: "30d", Description: "A session expires after this long without a request.", Example: `"30m"`},
		{Name: "lifetime", Kind: kDuration, DefaultDoc: "none: sessions live as long as they are used", Min: "1s", Max: "365d",
			Description: "A session expires this long after it was created, however busy; at least `timeout`.", Example: `"12h"`},
		{Name: "cookie", Kind: kString, Default: `"_zhost_id"`, Description: "Name of the browser id cookie.", Example: `"_myapp_sid"`},
		{Name: "cookie_path", Kind: kString, Default: `"/"`, Description: "Path attribute of the cookie; absolute.", Example: `"/app"`},
		{Name: "cookie_domain", Kind: kString, DefaultDoc: "none: the host of the request", Description: "Domain attribute of the cookie.", Example: `"example.org"`},
		{Name: "same_site", Kind: kString, Default: `"lax"`, Enum: []string{"lax", "strict", "none"}, Description: "SameSite attribute of the cookie. `none` needs a Secure cookie.", Example: `"strict"`},
		{Name: "secure", Kind: kString, Default: `"auto"`, Enum: []string{"auto", "always", "never"},
			Description: "Secure attribute of the cookie: `auto` sets it when the balancer's public URL is https.", Example: `"always"`},
		{Name: "limit", Kind: kInt, Default: "0", Min: "0", Max: "1000000000", Description: "Most sessions kept at once; 0 means no limit. Past it, new browsers get no session.", Example: "100000"},
		{Name: "refresh", Kind: kDuration, DefaultDoc: "`\"30s\"`, or half of `timeout` if that is shorter", Min: "1s", Max: "1d",
			Description: "Granularity of the last-access time: a session read within this long of its last recorded access is not written again. Shorter than `timeout`.", Example: `"1m"`},
		{Name: "sweep_interval", Kind: kDuration, DefaultDoc: "`\"1m\"`, or `timeout` if shorter", Min: "1s", Max: "1d",
			Description: "How often expired sessions are removed; at most `timeout`.", Example: `"5m"`},
		{Name: "on_add", Kind: kURL, DefaultDoc: "none", Description: "URL notified (HTTP POST of a JSON event with the non-secret session key, see docs/sessions.md) when a session is created.", Example: `"http://127.0.0.1:8081/hooks/session-added"`},
		{Name: "on_delete", Kind: kURL, DefaultDoc: "none", Description: "URL notified (HTTP POST of a JSON event with the non-secret session key, see docs/sessions.md) when a session expires or is deleted.", Example: `"http://127.0.0.1:8081/hooks/session-deleted"`},
	},
}

var tlsClientSpec = &blockSpec{
	Name:        "tls",
	Description: "Connect to the server over TLS. Required when the server block has `tls`.",
	Example:     "tls {\n  ca_file     = \"tls/ca.pem\"\n  server_name = \"zeo.internal\"\n}",
	Attrs: []attrSpec{
		{Name: "ca_file", Kind: kPath, DefaultDoc: "none: the system roots", Description: "PEM bundle of the authorities the server certificate must chain to.", Example: `"tls/ca.pem"`},
		{Name: "cert_file", Kind: kPath, DefaultDoc: "none", Description: "PEM client certificate, for a server with `require_client_cert`.", Example: `"tls/app1.pem"`},
		{Name: "key_file", Kind: kPath, DefaultDoc: "none", Description: "PEM private key of `cert_file`.", Example: `"tls/app1-key.pem"`},
		{Name: "server_name", Kind: kString, DefaultDoc: "the host of the server address", Description: "Name expected in the server certificate.", Example: `"zeo.internal"`},
	},
}

var clientSpec = &blockSpec{
	Name: "client", Label: "name", Many: true,
	Description: "An application node: connects to the server, keeps a RAM object cache and serves HTTP.",
	Example:     "client \"app1\" {\n  listen     = \"127.0.0.1:8081\"\n  cache_size = \"256MiB\"\n}",
	Attrs: append([]attrSpec{
		{Name: "listen", Kind: kAddress, Required: true, Description: "The HTTP address the node serves on, `host:port`.", Example: `"127.0.0.1:8081"`},
		{Name: "server", Kind: kAddress, DefaultDoc: "the server block's advertised address",
			Description: "The storage server address to connect to, when it is not the server block of this file.", Example: `"10.0.0.10:9100"`},
		{Name: "partition", Kind: kString, Default: `"main"`, Description: "The partition that holds the main tree.", Example: `"main"`},
		{Name: "cache_size", Kind: kSize, Default: `"64MiB"`, Min: "0", Max: "1TiB", Description: "Size bound of the RAM object cache; 0 disables it.", Example: `"256MiB"`},
		{Name: "connect_timeout", Kind: kDuration, Default: `"10s"`, Min: "100ms", Max: "10m",
			Description: "How long one attempt to connect to the server may take.", Example: `"3s"`},
		{Name: "busy_poll", Kind: kDuration, Default: `"50us"`, Min: "0s", Max: "1ms",
			Description: "The most that the node's reads from the server poll the socket for a reply before they sleep, adapting per connection (see the server's `busy_poll`). 0 turns it off; with one CPU (GOMAXPROCS 1) it has no effect.", Example: `"0s"`},
	}, nodeAttrs("client")...),
	Blocks: []*blockSpec{tlsClientSpec},
}

var healthCheckSpec = &blockSpec{
	Name:        "health_check",
	Description: "How the balancer checks its clients. A client is taken out after `fall` failed checks in a row and put back after `rise` good ones.",
	Example:     "health_check {\n  path     = \"/_zhost/health\"\n  interval = \"2s\"\n}",
	Attrs: []attrSpec{
		{Name: "path", Kind: kString, Default: `"/_zhost/health"`, Description: "URL path requested on each client; a 2xx answer is healthy.", Example: `"/_zhost/health"`},
		{Name: "interval", Kind: kDuration, Default: `"5s"`, Min: "100ms", Max: "1h", Description: "Time between checks of one client.", Example: `"2s"`},
		{Name: "timeout", Kind: kDuration, Default: `"2s"`, Min: "10ms", Max: "1m", Description: "How long one check may take; at most `interval`.", Example: `"1s"`},
		{Name: "rise", Kind: kInt, Default: "2", Min: "1", Max: "100", Description: "Good checks in a row that make a client healthy.", Example: "1"},
		{Name: "fall", Kind: kInt, Default: "3", Min: "1", Max: "100", Description: "Failed checks in a row that make a client unhealthy.", Example: "2"},
	},
}

var balancerSpec = &blockSpec{
	Name: "balancer", Label: "name", Many: true,
	Description: "The HTTP front end: the only public address. It spreads requests over its clients, and clients build absolute URLs from its `public_url`.",
	Example:     "balancer \"front\" {\n  listen     = \"127.0.0.1:8080\"\n  public_url = \"http://127.0.0.1:8080\"\n  clients    = [client.app1, client.app2]\n}",
	Attrs: append([]attrSpec{
		{Name: "listen", Kind: kAddress, Required: true, Description: "The public HTTP address, `host:port`.", Example: `"0.0.0.0:8080"`},
		{Name: "public_url", Kind: kURL, Required: true, Description: "The URL browsers use to reach the balancer; absolute http or https.", Example: `"https://www.example.org"`},
		{Name: "clients", Kind: kRefList, Ref: "client", Required: true, Description: "The clients requests are spread over; at least one, each once.", Example: "[client.app1, client.app2]"},
		{Name: "policy", Kind: kString, Default: `"round_robin"`, Enum: []string{"round_robin", "least_conn"}, Description: "How the next client is chosen.", Example: `"least_conn"`},
		{Name: "max_conns_per_client", Kind: kInt, Default: "0", Min: "0", Max: "1000000", Description: "Most requests in flight to one client; 0 means no limit. Requests past it wait in a queue.", Example: "64"},
		{Name: "queue_timeout", Kind: kDuration, Default: `"30s"`, Min: "0s", Max: "10m", Description: "How long a request may wait for a free client before it gets 503.", Example: `"5s"`},
		{Name: "trusted_proxies", Kind: kCIDRList, Default: "[]", Description: "Addresses (IPs or CIDR prefixes) whose X-Forwarded-For and X-Forwarded-Proto headers are believed.", Example: `["10.0.0.0/8"]`},
		{Name: "access_log", Kind: kPath, DefaultDoc: "none", Description: "Where to append one line per request.", Example: `"var/access.log"`},
		{Name: "drain_timeout", Kind: kDuration, Default: `"30s"`, Min: "0s", Max: "1h", Description: "On shutdown, how long requests in flight may take to finish.", Example: `"10s"`},
	}, nodeAttrs("balancer")...),
	Blocks: []*blockSpec{healthCheckSpec},
}

var pluginSpec = &blockSpec{
	Name: "plugin", Label: "name", Many: true, Open: true,
	Description: "An external plugin binary (built against the zhost plugin SDK) that provides storage types or mount functions. Besides the attributes below, the body holds the settings the plugin declares.",
	Example:     "plugin \"custom\" {\n  path   = \"bin/zhost-plugin-custom-storage\"\n  sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n}",
	Attrs: []attrSpec{
		{Name: "path", Kind: kPath, DefaultDoc: "`PLUGIN_DIR/zhost-plugin-NAME`", Description: "The plugin binary.", Example: `"bin/zhost-plugin-custom-storage"`},
		{Name: "sha256", Kind: kSHA256, DefaultDoc: "none: not checked", Description: "Expected SHA-256 of the binary, 64 hex digits; the host refuses to start a binary that does not match.", Example: `"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`},
		{Name: "args", Kind: kStringList, Default: "[]", Description: "Extra command-line arguments for the plugin process.", Example: `["-v"]`},
		{Name: "env", Kind: kStringMap, Default: "{}", Description: "Extra environment variables for the plugin process.", Example: `{ GOMAXPROCS = "2" }`},
	},
}

// reservedPluginNames cannot name a plugin block: they mean something else
// in a mount's plugin attribute.
var reservedPluginNames = map[string]bool{"builtin": true}
