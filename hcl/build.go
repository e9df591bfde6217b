package hcl

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	hcl2 "github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// builder turns the decoded top-level body into a Config, checking names
// and references on the way. Cross-block checks that need the whole
// Config are in check.go.
type builder struct {
	d       *decoder
	opts    Options
	cfg     *Config
	schemas map[string]*PluginSchemas // by plugin name; nil entry: unknown
	fileRng hcl2.Range

	// Names already declared, by block type, for duplicate and reference
	// checks.
	declared map[string]map[string]hcl2.Range
	nodes    map[string]hcl2.Range
	// mountArgs keeps each mount's args entries for the partition checks.
	mountArgs map[string][]objEntry
	// skip holds blocks whose name is invalid or taken; they are reported
	// and not built, so they cause no second diagnostic.
	skip map[*blockData]bool
	// badStorageRef is set when a partition's storage reference failed,
	// so no storage is called unused because of it.
	badStorageRef bool
}

func (b *builder) build(body hcl2.Body) {
	top := b.d.decodeBody(spec, body, b.fileRng, "")
	b.declared = map[string]map[string]hcl2.Range{}
	b.nodes = map[string]hcl2.Range{}
	b.mountArgs = map[string][]objEntry{}
	b.cfg.PluginDir, _ = top.attrs["plugin_dir"].str()
	b.cfg.PluginHangTimeout = top.attrs["plugin_hang_timeout"].dur()

	b.skip = map[*blockData]bool{}
	// Names first, so references can point forward.
	for _, bs := range spec.Blocks {
		if bs.Label == "" {
			continue
		}
		for _, blk := range top.blocks[bs.Name] {
			if !b.declare(bs, blk) {
				b.skip[blk] = true
			}
		}
	}
	each := func(typ string, fn func(*blockData)) {
		for _, blk := range top.blocks[typ] {
			if !b.skip[blk] {
				fn(blk)
			}
		}
	}
	each("machine", b.machine)
	each("plugin", b.plugin)
	each("storage", b.storage)
	each("partition", b.partition)
	each("mount", b.mount)
	each("server", b.server)
	each("client", b.client)
	each("balancer", b.balancer)
	if blks := top.blocks["sessions"]; len(blks) > 0 {
		b.sessions(blks[0])
	}
	b.check()
}

// declare records a labeled block's name, reporting an invalid name or a
// duplicate (naming where the first one is); false means the block is not
// to be built.
func (b *builder) declare(bs *blockSpec, blk *blockData) bool {
	name := blk.label
	if !hclsyntax.ValidIdentifier(name) {
		b.d.errorf(blk.labelRng, "Invalid name",
			"%q is not a valid %s name: a name starts with a letter and holds letters, digits, underscores and dashes, so it can be referenced as %s.NAME.", name, bs.Name, bs.Name)
		return false
	}
	if b.declared[bs.Name] == nil {
		b.declared[bs.Name] = map[string]hcl2.Range{}
	}
	if first, dup := b.declared[bs.Name][name]; dup {
		b.d.errorf(blk.defRng, "Duplicate "+bs.Name+" block",
			"A %s named %q is already declared at %s.", bs.Name, name, first)
		return false
	}
	b.declared[bs.Name][name] = blk.defRng
	switch bs.Name {
	case "server", "client", "balancer":
		if first, dup := b.nodes[name]; dup {
			b.d.errorf(blk.labelRng, "Duplicate node name",
				"Node names are unique across server, client and balancer blocks (`zhost run --node NAME` picks one); %q is already declared at %s.", name, first)
			return false
		}
		b.nodes[name] = blk.defRng
	}
	return true
}

// resolveRef reports a reference to an undeclared block.
func (b *builder) resolveRef(r ref) bool {
	if _, ok := b.declared[r.kind][r.name]; ok {
		return true
	}
	var names []string
	for n := range b.declared[r.kind] {
		names = append(names, n)
	}
	sort.Strings(names)
	detail := fmt.Sprintf("There is no %s %q in this file.", r.kind, r.name)
	if len(names) == 0 {
		detail = fmt.Sprintf("There is no %s block in this file.", r.kind)
	}
	b.d.errorf(r.rng, "Reference to undeclared "+r.kind, "%s%s", detail, didYouMean(r.name, names))
	return false
}

func blockOf(blk *blockData) Block {
	ranges := map[string]hcl2.Range{}
	for n, a := range blk.attrs {
		if a.set {
			ranges[n] = a.rng
		}
	}
	return Block{Name: blk.label, DeclRange: blk.defRng, AttrRanges: ranges}
}

// Typed getters over decoded attributes; a missing or bad attribute reads
// as the zero value (its problem is already reported).
func (a *attrVal) str() (string, bool) {
	if a == nil || a.bad {
		return "", false
	}
	s, ok := a.value.(string)
	return s, ok
}

func (a *attrVal) boolean() bool {
	if a == nil {
		return false
	}
	v, _ := a.value.(bool)
	return v
}

func (a *attrVal) dur() time.Duration {
	if a == nil {
		return 0
	}
	v, _ := a.value.(time.Duration)
	return v
}

func (a *attrVal) i64() int64 {
	if a == nil {
		return 0
	}
	v, _ := a.value.(int64)
	return v
}

func (a *attrVal) strs() []string {
	if a == nil {
		return nil
	}
	v, _ := a.value.([]string)
	return v
}

func (b *builder) machine(blk *blockData) {
	m := &Machine{Block: blockOf(blk)}
	m.Address, _ = blk.attrs["address"].str()
	b.cfg.Machines = append(b.cfg.Machines, m)
}

func (b *builder) plugin(blk *blockData) {
	p := &Plugin{Block: blockOf(blk)}
	if reservedPluginNames[p.Name] {
		b.d.errorf(blk.labelRng, "Reserved plugin name", "%q means the plugins built into zhost; name the plugin block something else.", p.Name)
	}
	if _, clash := b.opts.StorageTypes[p.Name]; clash {
		b.d.errorf(blk.labelRng, "Reserved plugin name", "%q is a built-in storage type; a plugin of that name could never be chosen by a storage's type.", p.Name)
	}
	if s, ok := blk.attrs["path"].str(); ok {
		p.Path = s
	} else if blk.attrs["path"] == nil {
		p.Path = filepath.Join(b.cfg.PluginDir, "zhost-plugin-"+p.Name)
	}
	p.SHA256, _ = blk.attrs["sha256"].str()
	p.Args = blk.attrs["args"].strs()
	if a := blk.attrs["env"]; a != nil {
		p.Env, _ = a.value.(map[string]string)
	}
	var sch *PluginSchemas
	known := false
	if b.opts.PluginSchemas != nil {
		s, err := b.opts.PluginSchemas(p)
		if err != nil {
			b.d.errorf(blk.defRng, "Cannot load plugin schema", "plugin %q (%s): %v", p.Name, p.Path, err)
		} else {
			sch, known = s, true
			if sch == nil {
				sch = &PluginSchemas{}
			}
		}
	}
	if _, dup := b.schemas[p.Name]; !dup {
		b.schemas[p.Name] = sch
	}
	var cfgSchema *Schema
	if known {
		cfgSchema = sch.Config
		if cfgSchema == nil {
			cfgSchema = &Schema{}
		}
	}
	p.Config = b.extraBody(blk, cfgSchema, nil, fmt.Sprintf("plugin %q", p.Name))
	b.cfg.Plugins = append(b.cfg.Plugins, p)
}

// extraBody decodes the rest of an open block with schema, or as written
// when schema is nil. Names in common are decoded by the caller; a schema
// attribute of the same name is left out here.
func (b *builder) extraBody(blk *blockData, schema *Schema, common []string, what string) Values {
	if blk.remain == nil {
		return Values{}
	}
	if schema == nil {
		return b.lenient(blk.remain)
	}
	if err := schema.Check(); err != nil {
		b.d.errorf(blk.defRng, "Invalid declared schema", "The schema declared for %s is broken: %v", what, err)
		return Values{}
	}
	attrs, _ := schemaAttrs(*schema, common)
	bd := b.d.decodeBody(&blockSpec{Attrs: attrs}, blk.remain, blk.defRng, what)
	out := Values{}
	for _, a := range attrs {
		if av := bd.attrs[a.Name]; av != nil && !av.bad {
			out[a.Name] = toValue(a.Kind, av.value)
		}
	}
	return out
}

// lenient decodes every attribute of body as written, JSON-compatible.
func (b *builder) lenient(body hcl2.Body) Values {
	attrs, diags := body.JustAttributes()
	b.d.diags = append(b.d.diags, diags...)
	out := Values{}
	for _, name := range sortedKeys(attrs) {
		at := attrs[name]
		v, vd := at.Expr.Value(nil)
		if vd.HasErrors() {
			b.d.diags = append(b.d.diags, vd...)
			continue
		}
		g, err := ctyToGo(v)
		if err != nil {
			b.d.errorf(at.Expr.Range(), "Invalid value", "The %s argument must be JSON-compatible: %v.", name, err)
			continue
		}
		out[name] = g
	}
	return out
}

func (b *builder) storage(blk *blockData) {
	s := &Storage{Block: blockOf(blk)}
	s.Type, _ = blk.attrs["type"].str()
	s.Path, _ = blk.attrs["path"].str()
	s.ReadOnly = blk.attrs["read_only"].boolean()
	s.InProcess = blk.attrs["in_process"].boolean()
	what := fmt.Sprintf("storage %q", s.Name)
	common := []string{"type", "path", "read_only", "in_process"}
	var schema *Schema
	known := true
	if t := blk.attrs["type"]; t != nil && !t.bad {
		if sc, ok := b.opts.StorageTypes[s.Type]; ok {
			schema = &sc
		} else if _, ok := b.declared["plugin"][s.Type]; ok {
			s.Plugin = s.Type
			if s.InProcess {
				b.d.errorf(blk.attrs["in_process"].rng, "In-process plugin storage", "Only built-in storage types run in process; %q is the external plugin %q.", s.Type, s.Plugin)
			}
			ps := b.schemas[s.Plugin]
			if ps == nil {
				known = false
			} else if ps.Storage == nil {
				b.d.errorf(t.rng, "Plugin provides no storage", "The plugin %q does not declare a storage type.", s.Plugin)
				known = false
			} else {
				schema = ps.Storage
			}
		} else {
			var names []string
			for n := range b.opts.StorageTypes {
				names = append(names, n)
			}
			for n := range b.declared["plugin"] {
				names = append(names, n)
			}
			sort.Strings(names)
			b.d.errorf(t.rng, "Unknown storage type",
				"%q is neither a built-in storage type nor a declared plugin. Known: %s.%s", s.Type, quoteList(names), didYouMean(s.Type, names))
			known = false
		}
	} else {
		known = false
	}
	if known && schema != nil {
		s.Config = b.extraBody(blk, schema, common, what)
		// Common attributes the type declares: honour Required and
		// defaults, and hand the values to the backend in Config.
		for _, name := range []string{"path", "read_only"} {
			a := schema.Attribute(name)
			if a == nil {
				continue
			}
			if blk.attrs[name] == nil || !blk.attrs[name].set {
				if a.Required {
					b.d.errorf(blk.defRng, "Missing required argument", "The argument %q is required in %s (type %q).", name, what, s.Type)
				} else if name == "path" && a.Default != nil {
					if p, ok := a.Default.(string); ok && p != "" {
						s.Path = b.d.resolve(p)
					}
				}
			}
		}
	} else if !known {
		s.Config = b.lenient(blk.remain)
	}
	if s.Config == nil {
		s.Config = Values{}
	}
	if s.Path != "" {
		s.Config["path"] = s.Path
	}
	s.Config["read_only"] = s.ReadOnly
	b.cfg.Storages = append(b.cfg.Storages, s)
}

func (b *builder) partition(blk *blockData) {
	p := &Partition{Block: blockOf(blk)}
	if a := blk.attrs["storage"]; a != nil && !a.bad {
		r := a.value.(ref)
		if b.resolveRef(r) {
			p.Storage = r.name
		}
	}
	if p.Storage == "" {
		b.badStorageRef = true
	}
	p.ReadOnly = blk.attrs["read_only"].boolean()
	b.cfg.Partitions = append(b.cfg.Partitions, p)
}

func (b *builder) mount(blk *blockData) {
	m := &Mount{Block: blockOf(blk)}
	m.Function, _ = blk.attrs["function"].str()
	what := fmt.Sprintf("mount %q", m.Name)

	// Which functions exist, and their args schemas; nil: not known.
	var funcs map[string]Schema
	if a := blk.attrs["plugin"]; a != nil && !a.bad {
		pr := a.value.(pluginRef)
		switch {
		case pr.builtin:
			m.Plugin = "builtin"
			funcs = b.opts.MountFunctions
		case pr.path != "":
			m.PluginPath = pr.path
		default:
			if b.resolveRef(ref{kind: "plugin", name: pr.name, rng: pr.rng}) {
				m.Plugin = pr.name
				if p := b.cfg.Plugin(pr.name); p != nil {
					m.PluginPath = p.Path
				}
				if ps := b.schemas[pr.name]; ps != nil {
					funcs = ps.MountFunctions
					if funcs == nil {
						funcs = map[string]Schema{}
					}
				}
			}
		}
	}
	var argSchema *Schema
	if fa := blk.attrs["function"]; funcs != nil && fa != nil && !fa.bad {
		if sc, ok := funcs[m.Function]; ok {
			argSchema = &sc
		} else {
			names := sortedKeys(funcs)
			who := "the plugin " + m.Plugin
			if m.Plugin == "builtin" {
				who = "the builtin plugin"
			}
			b.d.errorf(fa.rng, "Unknown mount function", "%s exports no mount function %q. Known: %s.%s", who, m.Function, quoteList(names), didYouMean(m.Function, names))
		}
	}

	if s, ok := blk.attrs["path"].str(); ok {
		if err := checkTreePath(s); err != nil {
			b.d.errorf(blk.attrs["path"].rng, "Invalid mount path", "%v.", err)
		} else if s == "/" {
			b.d.errorf(blk.attrs["path"].rng, "Invalid mount path", "A mount cannot replace the root of the main tree.")
		} else {
			m.Path = s
		}
	}

	var entries []objEntry
	argsBad := false
	if a := blk.attrs["args"]; a != nil {
		entries, _ = a.value.([]objEntry)
		argsBad = a.bad
	}
	b.mountArgs[m.Name] = entries
	m.Args = map[string]any{}
	if argSchema != nil && !argsBad {
		m.Args = b.checkArgs(blk, entries, *argSchema, what)
		if m.Plugin == "builtin" && b.opts.CheckMountArg != nil {
			for _, e := range entries {
				v, ok := m.Args[e.key]
				if !ok {
					continue
				}
				if err := b.opts.CheckMountArg(m.Function, e.key, v); err != nil {
					b.d.errorf(e.valRng, "Invalid mount argument", "args.%s of %s: %v.", e.key, what, err)
				}
			}
		}
	} else {
		for _, e := range entries {
			m.Args[e.key] = e.value
		}
	}
	b.cfg.Mounts = append(b.cfg.Mounts, m)
}

// checkArgs checks mount args against a function's schema, each problem at
// its key or value.
func (b *builder) checkArgs(blk *blockData, entries []objEntry, schema Schema, what string) map[string]any {
	out := map[string]any{}
	if err := schema.Check(); err != nil {
		b.d.errorf(blk.defRng, "Invalid declared schema", "The args schema declared for %s is broken: %v", what, err)
		return out
	}
	attrs, _ := schemaAttrs(schema, nil)
	byName := map[string]*attrSpec{}
	var names []string
	for i := range attrs {
		byName[attrs[i].Name] = &attrs[i]
		names = append(names, attrs[i].Name)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		a := byName[e.key]
		if a == nil {
			b.d.errorf(e.keyRng, "Unsupported argument", "The mount function takes no argument %q. Known: %s.%s", e.key, quoteList(names), didYouMean(e.key, names))
			continue
		}
		seen[e.key] = true
		v, ok, null := b.d.decodeExpr(a, e.expr)
		if ok && !null {
			out[e.key] = toValue(a.Kind, v)
		}
	}
	argsRng := blk.defRng
	if a := blk.attrs["args"]; a != nil && a.set {
		argsRng = a.rng
	}
	for i := range attrs {
		a := &attrs[i]
		if _, ok := out[a.Name]; ok || seen[a.Name] {
			continue
		}
		if a.Required {
			b.d.errorf(argsRng, "Missing required argument", "The mount function needs args.%s in %s.", a.Name, what)
		} else if a.hasDefault {
			out[a.Name] = toValue(a.Kind, a.defaultValue)
		}
	}
	return out
}

// checkTreePath checks a path in the main tree: absolute and clean.
func checkTreePath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q is not absolute; paths in the main tree start with /", p)
	}
	if path.Clean(p) != p {
		return fmt.Errorf("%q is not clean; write %q", p, path.Clean(p))
	}
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		for _, c := range seg {
			if c < 0x20 || c == 0x7f {
				return fmt.Errorf("%q holds a control character", p)
			}
		}
	}
	return nil
}

// node decodes what every node block shares.
func (b *builder) node(blk *blockData, kind NodeKind) Node {
	n := Node{Block: blockOf(blk), Kind: kind}
	n.Listen, _ = blk.attrs["listen"].str()
	if a := blk.attrs["machine"]; a != nil && !a.bad {
		r := a.value.(ref)
		if b.resolveRef(r) {
			n.Machine = r.name
		}
	}
	if s, ok := blk.attrs["pid_file"].str(); ok {
		n.PidFile = s
	} else if blk.attrs["pid_file"] == nil && hclsyntax.ValidIdentifier(n.Name) {
		n.PidFile = filepath.Join(b.cfg.Dir, "var", n.Name+".pid")
	}
	n.LogFile, _ = blk.attrs["log_file"].str()
	if s, ok := blk.attrs["advertise"].str(); ok {
		n.Advertise = s
		if host, port, err := splitHostPort(s); err == nil && (isWildcard(host) || port == 0) {
			b.d.errorf(blk.attrs["advertise"].rng, "Invalid advertise address",
				"%q cannot be dialed: the advertised address needs a host and a port that other nodes can reach.", s)
		}
	} else if n.Listen != "" {
		host, port, err := splitHostPort(n.Listen)
		if err == nil {
			if isWildcard(host) {
				host = "127.0.0.1"
				if m := b.cfg.Machine(n.Machine); m != nil && m.Address != "" {
					host = m.Address
				}
			}
			n.Advertise = joinHostPort(host, port)
		}
	}
	return n
}

func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d", host, port)
}

func (b *builder) server(blk *blockData) {
	s := &Server{Node: b.node(blk, KindServer)}
	s.CommitTimeout = blk.attrs["commit_timeout"].dur()
	s.TransactionTimeout = blk.attrs["transaction_timeout"].dur()
	s.InvalidationLogSize = blk.attrs["invalidation_log_size"].i64()
	s.MaxMessageSize = blk.attrs["max_message_size"].i64()
	s.BusyPoll = blk.attrs["busy_poll"].dur()
	if s.CommitTimeout > 0 && s.TransactionTimeout > 0 && s.TransactionTimeout < s.CommitTimeout {
		b.d.errorf(blk.attrs["transaction_timeout"].rng, "Value out of range",
			"transaction_timeout (%s) must be at least commit_timeout (%s): a transaction holds the commit lock only at its end.",
			FormatDuration(s.TransactionTimeout), FormatDuration(s.CommitTimeout))
	}
	if tb := blk.blocks["tls"]; len(tb) > 0 {
		t := tb[0]
		s.TLS = &ServerTLS{DeclRange: t.defRng}
		s.TLS.CertFile, _ = t.attrs["cert_file"].str()
		s.TLS.KeyFile, _ = t.attrs["key_file"].str()
		s.TLS.ClientCAFile, _ = t.attrs["client_ca_file"].str()
		s.TLS.RequireClientCert = t.attrs["require_client_cert"].boolean()
		if s.TLS.RequireClientCert && t.attrs["client_ca_file"] == nil {
			b.d.errorf(t.attrs["require_client_cert"].rng, "Missing client_ca_file",
				"require_client_cert needs client_ca_file: the authorities client certificates must chain to.")
		}
	}
	b.cfg.Server = s
}

func (b *builder) client(blk *blockData) {
	c := &Client{Node: b.node(blk, KindClient)}
	c.Server, _ = blk.attrs["server"].str()
	c.Partition, _ = blk.attrs["partition"].str()
	c.CacheSize = blk.attrs["cache_size"].i64()
	c.ConnectTimeout = blk.attrs["connect_timeout"].dur()
	c.BusyPoll = blk.attrs["busy_poll"].dur()
	if tb := blk.blocks["tls"]; len(tb) > 0 {
		t := tb[0]
		c.TLS = &ClientTLS{DeclRange: t.defRng}
		c.TLS.CAFile, _ = t.attrs["ca_file"].str()
		c.TLS.CertFile, _ = t.attrs["cert_file"].str()
		c.TLS.KeyFile, _ = t.attrs["key_file"].str()
		c.TLS.ServerName, _ = t.attrs["server_name"].str()
		if (t.attrs["cert_file"] == nil) != (t.attrs["key_file"] == nil) {
			b.d.errorf(t.defRng, "Incomplete client certificate", "Set both cert_file and key_file, or neither.")
		}
	}
	b.cfg.Clients = append(b.cfg.Clients, c)
}

func (b *builder) balancer(blk *blockData) {
	bl := &Balancer{Node: b.node(blk, KindBalancer)}
	bl.PublicURL, _ = blk.attrs["public_url"].str()
	bl.Policy, _ = blk.attrs["policy"].str()
	bl.MaxConnsPerClient = blk.attrs["max_conns_per_client"].i64()
	bl.QueueTimeout = blk.attrs["queue_timeout"].dur()
	bl.TrustedProxies = blk.attrs["trusted_proxies"].strs()
	bl.AccessLog, _ = blk.attrs["access_log"].str()
	bl.DrainTimeout = blk.attrs["drain_timeout"].dur()
	if a := blk.attrs["clients"]; a != nil && !a.bad {
		refs, _ := a.value.([]ref)
		if len(refs) == 0 {
			b.d.errorf(a.rng, "Balancer without clients", "balancer %q must spread requests over at least one client.", bl.Name)
		}
		seen := map[string]hcl2.Range{}
		for _, r := range refs {
			if !b.resolveRef(r) {
				continue
			}
			if first, dup := seen[r.name]; dup {
				b.d.errorf(r.rng, "Duplicate client", "client.%s is already listed at %s.", r.name, first)
				continue
			}
			seen[r.name] = r.rng
			bl.Clients = append(bl.Clients, r.name)
		}
	}
	// Defaults of the health_check block apply without the block too.
	hcBlk := &blockData{attrs: map[string]*attrVal{}}
	if hb := blk.blocks["health_check"]; len(hb) > 0 {
		hcBlk = hb[0]
	} else {
		hcBlk = b.d.decodeBody(healthCheckSpec, hcl2.EmptyBody(), blk.defRng, "")
	}
	bl.HealthCheck = HealthCheck{
		Interval: hcBlk.attrs["interval"].dur(),
		Timeout:  hcBlk.attrs["timeout"].dur(),
		Rise:     hcBlk.attrs["rise"].i64(),
		Fall:     hcBlk.attrs["fall"].i64(),
	}
	bl.HealthCheck.Path, _ = hcBlk.attrs["path"].str()
	if a := hcBlk.attrs["path"]; a != nil && a.set && !a.bad {
		if err := checkTreePath(bl.HealthCheck.Path); err != nil {
			b.d.errorf(a.rng, "Invalid health check path", "%v.", err)
		}
	}
	if hc := bl.HealthCheck; hc.Timeout > hc.Interval && hc.Interval > 0 {
		b.d.errorf(hcBlk.attrs["timeout"].rng, "Value out of range",
			"The health check timeout (%s) must be at most its interval (%s).", FormatDuration(hc.Timeout), FormatDuration(hc.Interval))
	}
	b.cfg.Balancers = append(b.cfg.Balancers, bl)
}

func (b *builder) sessions(blk *blockData) {
	s := &Sessions{DeclRange: blk.defRng, AttrRanges: blockOf(blk).AttrRanges}
	s.Container, _ = blk.attrs["container"].str()
	s.Timeout = blk.attrs["timeout"].dur()
	s.Lifetime = blk.attrs["lifetime"].dur()
	s.Cookie, _ = blk.attrs["cookie"].str()
	s.CookiePath, _ = blk.attrs["cookie_path"].str()
	s.CookieDomain, _ = blk.attrs["cookie_domain"].str()
	s.SameSite, _ = blk.attrs["same_site"].str()
	s.Secure, _ = blk.attrs["secure"].str()
	s.Limit = blk.attrs["limit"].i64()
	s.Refresh = blk.attrs["refresh"].dur()
	s.SweepInterval = blk.attrs["sweep_interval"].dur()
	s.OnAdd, _ = blk.attrs["on_add"].str()
	s.OnDelete, _ = blk.attrs["on_delete"].str()
	if blk.attrs["sweep_interval"] == nil {
		s.SweepInterval = min(time.Minute, s.Timeout)
	}
	if blk.attrs["refresh"] == nil {
		s.Refresh = min(30*time.Second, s.Timeout/2)
	}
	rng := func(n string) hcl2.Range {
		if a := blk.attrs[n]; a != nil {
			return a.rng
		}
		return blk.defRng
	}
	if s.Timeout > 0 {
		if s.Lifetime > 0 && s.Lifetime < s.Timeout {
			b.d.errorf(rng("lifetime"), "Value out of range", "lifetime (%s) must be at least timeout (%s).", FormatDuration(s.Lifetime), FormatDuration(s.Timeout))
		}
		if s.Refresh >= s.Timeout {
			b.d.errorf(rng("refresh"), "Value out of range", "refresh (%s) must be shorter than timeout (%s), or sessions expire while in use.", FormatDuration(s.Refresh), FormatDuration(s.Timeout))
		}
		if s.SweepInterval > s.Timeout {
			b.d.errorf(rng("sweep_interval"), "Value out of range", "sweep_interval (%s) must be at most timeout (%s).", FormatDuration(s.SweepInterval), FormatDuration(s.Timeout))
		}
	}
	if a := blk.attrs["cookie"]; a != nil && !a.bad && !validCookieName(s.Cookie) {
		b.d.errorf(a.rng, "Invalid cookie name", "%q is not a valid cookie name: use letters, digits and !#$%%&'*+-.^_`|~ only.", s.Cookie)
	}
	if a := blk.attrs["cookie_path"]; a != nil && !a.bad && (!strings.HasPrefix(s.CookiePath, "/") || strings.ContainsAny(s.CookiePath, ";\x00\r\n")) {
		b.d.errorf(a.rng, "Invalid cookie path", "%q must be an absolute URL path without ';'.", s.CookiePath)
	}
	if a := blk.attrs["cookie_domain"]; a != nil && !a.bad {
		if err := checkHost(strings.TrimPrefix(s.CookieDomain, ".")); err != nil {
			b.d.errorf(a.rng, "Invalid cookie domain", "%v.", err)
		}
	}
	if a := blk.attrs["container"]; a != nil && !a.bad {
		if err := checkTreePath(s.Container); err != nil {
			b.d.errorf(a.rng, "Invalid session container", "%v.", err)
			s.Container = ""
		}
	}
	if s.SameSite == SameSiteNone && s.Secure == SecureNever {
		b.d.errorf(rng("same_site"), "Insecure SameSite=None cookie", "Browsers drop SameSite=None cookies that are not Secure; with secure = \"never\" no session would survive. Use secure = \"always\" or \"auto\" with an https public_url.")
	}
	b.cfg.Sessions = s
}

// validCookieName reports whether s is an RFC 6265 token.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c <= 0x20 || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}
