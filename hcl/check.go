package hcl

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	hcl2 "github.com/hashicorp/hcl/v2"
)

// check runs the cross-block checks: what would otherwise fail only when
// the cluster starts.
func (b *builder) check() {
	c := b.cfg
	if c.Server == nil && len(c.Clients) == 0 && len(c.Balancers) == 0 {
		b.d.errorf(b.fileRng, "No nodes", "The file declares no server, client or balancer block, so there is nothing to run.")
	}
	b.checkStorages()
	b.checkMounts()
	b.checkSessions()
	b.checkClients()
	b.checkPorts()
	b.checkPidFiles()
	b.checkMachines()
}

// checkPidFiles: two nodes on one host cannot share a pid file; the second
// to start would take over the first one's.
func (b *builder) checkPidFiles() {
	seen := map[string]*Node{}
	for _, n := range b.cfg.Nodes() {
		if n.PidFile == "" {
			continue
		}
		key := b.hostKey(n) + "\x00" + n.PidFile
		if o, dup := seen[key]; dup {
			_, a := n.AttrRanges["pid_file"]
			_, c := o.AttrRanges["pid_file"]
			if !a && !c {
				continue // default pid files clash only when names do, reported already
			}
			b.d.errorf(n.RangeOf("pid_file"), "Pid file already in use",
				"%s %q and %s %q (declared at %s) both write %s on the same host.", n.Kind, n.Name, o.Kind, o.Name, o.DeclRange, n.PidFile)
			continue
		}
		seen[key] = n
	}
}

func (b *builder) checkStorages() {
	c := b.cfg
	if c.Server == nil {
		if len(c.Storages) > 0 {
			b.d.errorf(c.Storages[0].DeclRange, "No server block", "Storages are served by the server node; add a server block.")
		} else if len(c.Partitions) > 0 {
			b.d.errorf(c.Partitions[0].DeclRange, "No server block", "Partitions are served by the server node; add a server block.")
		}
	} else if len(c.Partitions) == 0 {
		b.d.warnf(c.Server.DeclRange, "Server without partitions", "server %q serves no partition; clients will have nothing to open.", c.Server.Name)
	}
	// Two partitions on one storage: both would write the same backend.
	used := map[string]*Partition{}
	for _, p := range c.Partitions {
		if p.Storage == "" {
			continue
		}
		if first, dup := used[p.Storage]; dup {
			b.d.errorf(p.RangeOf("storage"), "Storage already in use",
				"storage %q already backs partition %q (declared at %s); a storage backs one partition.", p.Storage, first.Name, first.DeclRange)
			continue
		}
		used[p.Storage] = p
	}
	for _, s := range c.Storages {
		if _, ok := used[s.Name]; !ok && !b.badStorageRef {
			b.d.warnf(s.DeclRange, "Unused storage", "storage %q backs no partition, so nothing can reach it.", s.Name)
		}
	}
	// Two storages on one path, or one inside the other's directory.
	for i, s := range c.Storages {
		if s.Path == "" {
			continue
		}
		for _, o := range c.Storages[:i] {
			if o.Path == "" {
				continue
			}
			if s.Path == o.Path {
				b.d.errorf(s.RangeOf("path"), "Storage path already in use",
					"storage %q uses the same path as storage %q (declared at %s): %s.", s.Name, o.Name, o.DeclRange, s.Path)
				break
			}
			if within(s.Path, o.Path) || within(o.Path, s.Path) {
				b.d.errorf(s.RangeOf("path"), "Storage path overlaps",
					"storage %q (%s) and storage %q (%s, declared at %s) would write inside each other's files.", s.Name, s.Path, o.Name, o.Path, o.DeclRange)
				break
			}
		}
	}
}

// within reports whether p is strictly inside dir.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}

// under reports whether tree path p is strictly below mount path m.
func under(p, m string) bool {
	return strings.HasPrefix(p, m+"/")
}

func (b *builder) checkMounts() {
	c := b.cfg
	for i, m := range c.Mounts {
		if m.Path != "" {
			for _, o := range c.Mounts[:i] {
				if o.Path == "" {
					continue
				}
				switch {
				case m.Path == o.Path:
					b.d.errorf(m.RangeOf("path"), "Mount path already in use",
						"mount %q and mount %q (declared at %s) both mount at %s.", m.Name, o.Name, o.DeclRange, m.Path)
				case under(m.Path, o.Path):
					b.d.errorf(m.RangeOf("path"), "Mount inside another mount",
						"%s is inside mount %q at %s (declared at %s); mounts cannot nest.", m.Path, o.Name, o.Path, o.DeclRange)
				case under(o.Path, m.Path):
					b.d.errorf(m.RangeOf("path"), "Mount inside another mount",
						"mount %q at %s (declared at %s) is inside %s; mounts cannot nest.", o.Name, o.Path, o.DeclRange, m.Path)
				default:
					continue
				}
				break
			}
		}
		for _, e := range b.mountArgs[m.Name] {
			if e.key != "partition" {
				continue
			}
			name, ok := e.value.(string)
			if !ok {
				b.d.errorf(e.valRng, "Invalid partition", "args.partition must be the name of a partition, a string.")
				continue
			}
			if c.Partition(name) == nil {
				var names []string
				for _, p := range c.Partitions {
					names = append(names, p.Name)
				}
				b.d.errorf(e.valRng, "Unknown partition", "mount %q names partition %q, which is not declared.%s", m.Name, name, didYouMean(name, names))
			}
		}
	}
}

func (b *builder) checkSessions() {
	c := b.cfg
	s := c.Sessions
	if s == nil {
		return
	}
	if s.Container != "" {
		var m *Mount
		for _, mm := range c.Mounts {
			if mm.Path != "" && under(s.Container, mm.Path) {
				m = mm
				break
			}
		}
		crng := s.DeclRange
		if r, ok := s.AttrRanges["container"]; ok {
			crng = r
		}
		if m == nil {
			var paths []string
			for _, mm := range c.Mounts {
				if mm.Path != "" {
					paths = append(paths, mm.Path)
				}
			}
			detail := "no mount is declared"
			if len(paths) > 0 {
				detail = "the mounts are at " + strings.Join(paths, ", ")
			}
			b.d.errorf(crng, "Session container not under a mount",
				"%s must be inside a mounted folder so every client shares it through a partition of its own; %s.", s.Container, detail)
		} else {
			s.Mount = m.Name
			b.checkSessionPartition(m, crng)
		}
	}
	if s.SameSite == SameSiteNone && s.Secure == SecureAuto {
		for _, bl := range c.Balancers {
			if strings.HasPrefix(bl.PublicURL, "http://") {
				rng := s.DeclRange
				if r, ok := s.AttrRanges["same_site"]; ok {
					rng = r
				}
				b.d.errorf(rng, "Insecure SameSite=None cookie",
					"With secure = \"auto\" the cookie is not Secure behind balancer %q (public_url %s), and browsers drop SameSite=None cookies that are not Secure.", bl.Name, bl.PublicURL)
				break
			}
		}
	}
}

func (b *builder) checkSessionPartition(m *Mount, crng hcl2.Range) {
	c := b.cfg
	name := m.Partition()
	if name == "" {
		b.d.warnf(crng, "Session partition unknown",
			"mount %q names no partition in its args, so zhost cannot check that the session container's partition exists and is writable.", m.Name)
		return
	}
	p := c.Partition(name)
	if p == nil {
		return // reported at the mount's args
	}
	if p.ReadOnly {
		b.d.errorf(crng, "Session container in a read-only partition",
			"The session container is in partition %q (through mount %q), which is read_only (at %s); sessions must be written.", p.Name, m.Name, p.RangeOf("read_only"))
		return
	}
	st := c.Storage(p.Storage)
	if st == nil {
		return
	}
	if st.ReadOnly {
		b.d.errorf(crng, "Session container in a read-only partition",
			"The session container is in partition %q, whose storage %q is read_only (at %s); sessions must be written.", p.Name, st.Name, st.RangeOf("read_only"))
		return
	}
	if st.Type == "filestorage" {
		b.d.warnf(crng, "Sessions in an append-only storage",
			"Partition %q is on storage %q of type filestorage, which appends every session write and grows until packed; type = \"packless\" overwrites in place.", p.Name, st.Name)
	}
}

func (b *builder) checkClients() {
	c := b.cfg
	for _, cl := range c.Clients {
		own := cl.Server == ""
		if own {
			if c.Server == nil {
				b.d.errorf(cl.DeclRange, "No server to connect to", "client %q has no server attribute and the file declares no server block.", cl.Name)
				continue
			}
			cl.Server = c.Server.Advertise
		}
		if !own || c.Server == nil {
			continue
		}
		if cl.Partition != "" && c.Partition(cl.Partition) == nil && len(c.Partitions) > 0 {
			how := "written"
			if _, ok := cl.AttrRanges["partition"]; !ok {
				how = "the default"
			}
			var names []string
			for _, p := range c.Partitions {
				names = append(names, p.Name)
			}
			b.d.errorf(cl.RangeOf("partition"), "Unknown partition",
				"client %q opens partition %q (%s), which the server does not serve.%s", cl.Name, cl.Partition, how, didYouMean(cl.Partition, names))
		}
		st := c.Server.TLS
		switch {
		case st != nil && cl.TLS == nil:
			b.d.errorf(cl.DeclRange, "Client without TLS", "server %q uses TLS (at %s); client %q needs a tls block to connect.", c.Server.Name, st.DeclRange, cl.Name)
		case st == nil && cl.TLS != nil:
			b.d.errorf(cl.TLS.DeclRange, "Server without TLS", "client %q connects with TLS but server %q has no tls block.", cl.Name, c.Server.Name)
		case st != nil && st.RequireClientCert && cl.TLS.CertFile == "":
			b.d.errorf(cl.TLS.DeclRange, "Missing client certificate", "server %q requires a client certificate; set cert_file and key_file.", c.Server.Name)
		}
	}
}

// hostKey names the host a node runs on, for the port clash check:
// machines with the same address are one host.
func (b *builder) hostKey(n *Node) string {
	if m := b.cfg.Machine(n.Machine); m != nil {
		return "machine:" + m.Address
	}
	return "local"
}

// bindKey normalizes a listen host: wildcard or the address. Each
// loopback address is its own (127.0.0.1:9100 and 127.0.0.2:9100 both
// bind); localhost is 127.0.0.1, what Go listens on for it.
func bindKey(host string) string {
	if isWildcard(host) {
		return "*"
	}
	if strings.EqualFold(host, "localhost") {
		return "127.0.0.1"
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return strings.ToLower(host)
}

func (b *builder) checkPorts() {
	type bound struct {
		n    *Node
		host string
		port int
	}
	byHost := map[string][]bound{}
	for _, n := range b.cfg.Nodes() {
		host, port, err := splitHostPort(n.Listen)
		if err != nil {
			continue
		}
		if port == 0 {
			b.d.warnf(n.RangeOf("listen"), "Port chosen at start",
				"%s %q listens on port 0, so the port is chosen when it starts and other nodes cannot be told it from this file.", n.Kind, n.Name)
			continue
		}
		key := b.hostKey(n)
		me := bound{n: n, host: bindKey(host), port: port}
		for _, o := range byHost[key] {
			if o.port != port {
				continue
			}
			if o.host == me.host || o.host == "*" || me.host == "*" {
				b.d.errorf(n.RangeOf("listen"), "Port clash",
					"%s %q listens on %s, but %s %q (declared at %s) already uses port %d on the same host.", n.Kind, n.Name, n.Listen, o.n.Kind, o.n.Name, o.n.DeclRange, port)
				break
			}
		}
		byHost[key] = append(byHost[key], me)
	}
}

// isLoopbackAddr reports whether a "host:port" dials the local machine only.
func isLoopbackAddr(addr string) bool {
	host, _, err := splitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func (b *builder) checkMachines() {
	c := b.cfg
	if len(c.Machines) == 0 {
		return
	}
	used := map[string]bool{}
	for _, n := range c.Nodes() {
		if n.Machine == "" {
			if _, written := n.AttrRanges["machine"]; !written {
				b.d.warnf(n.DeclRange, "Node without a machine",
					"The file declares machines but %s %q names none; it runs on whichever machine `zhost run` starts it.", n.Kind, n.Name)
			}
			continue
		}
		used[n.Machine] = true
	}
	for _, m := range c.Machines {
		if !used[m.Name] {
			b.d.warnf(m.DeclRange, "Unused machine", "No node runs on machine %q.", m.Name)
		}
	}
	// A node on another machine cannot dial a loopback address.
	if s := c.Server; s != nil && isLoopbackAddr(s.Advertise) {
		for _, cl := range c.Clients {
			if _, override := cl.AttrRanges["server"]; override || cl.Machine == s.Machine || unresolvedMachine(&s.Node) || unresolvedMachine(&cl.Node) {
				continue
			}
			b.d.errorf(s.RangeOf(advertiseOrListen(&s.Node)), "Unreachable server",
				"server %q is reached at %s, a loopback address, but client %q runs on %s.", s.Name, s.Advertise, cl.Name, machineName(cl.Machine))
			break
		}
	}
	for _, bl := range c.Balancers {
		for _, name := range bl.Clients {
			cl := c.Client(name)
			if cl == nil || cl.Machine == bl.Machine || !isLoopbackAddr(cl.Advertise) || unresolvedMachine(&cl.Node) || unresolvedMachine(&bl.Node) {
				continue
			}
			b.d.errorf(cl.RangeOf(advertiseOrListen(&cl.Node)), "Unreachable client",
				"client %q is reached at %s, a loopback address, but balancer %q runs on %s.", cl.Name, cl.Advertise, bl.Name, machineName(bl.Machine))
		}
	}
}

// unresolvedMachine reports a machine reference that failed (already
// reported), so no check guesses where the node runs.
func unresolvedMachine(n *Node) bool {
	_, written := n.AttrRanges["machine"]
	return written && n.Machine == ""
}

func advertiseOrListen(n *Node) string {
	if _, ok := n.AttrRanges["advertise"]; ok {
		return "advertise"
	}
	return "listen"
}

func machineName(m string) string {
	if m == "" {
		return "the local machine"
	}
	return fmt.Sprintf("machine %q", m)
}
