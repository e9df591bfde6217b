package pluginhost

import (
	"context"
	"fmt"

	"github.com/zhostdb/zhost/hcl"
)

// SpecFromConfig returns the Spec of a `plugin` block of cluster.hcl.
// Errors about the plugin point at the block's header.
func SpecFromConfig(p *hcl.Plugin) Spec {
	rng := p.DeclRange
	return Spec{
		Name:   p.Name,
		Path:   p.Path,
		SHA256: p.SHA256,
		Args:   p.Args,
		Env:    p.Env,
		Config: p.Config,
		Range:  &rng,
	}
}

// StorageSpecFromConfig returns the StorageSpec of a `storage` block.
func StorageSpecFromConfig(s *hcl.Storage) StorageSpec {
	return StorageSpec{Plugin: s.Plugin, Type: s.Type, Name: s.Name, Config: s.Config, InProcess: s.InProcess}
}

// PluginSchemas returns the hcl.Options.PluginSchemas callback: for each
// plugin block it registers the plugin (if not yet known), starts it and
// returns what it declares, so `zhost validate` checks a plugin's settings,
// its storage blocks and its mount args at their lines. The plugin keeps
// running for later use; ctx bounds each start.
func (m *Manager) PluginSchemas(ctx context.Context) func(p *hcl.Plugin) (*hcl.PluginSchemas, error) {
	return func(hp *hcl.Plugin) (*hcl.PluginSchemas, error) {
		if _, err := m.Plugin(hp.Name); err != nil {
			spec := SpecFromConfig(hp)
			spec.Config = nil // not decoded yet: this call is what decodes it
			if err := m.Add(spec); err != nil {
				return nil, err
			}
		}
		d, err := m.Describe(ctx, hp.Name)
		if err != nil {
			return nil, err
		}
		out := &hcl.PluginSchemas{}
		if len(d.Config.Attributes) > 0 {
			c := d.Config
			out.Config = &c
		}
		switch {
		case len(d.Backends) == 1:
			s := d.Backends[0].Schema
			out.Storage = &s
		case len(d.Backends) > 1:
			b, ok := d.Backend(hp.Name)
			if !ok {
				return nil, fmt.Errorf("plugin %q exports several backend types %v and none is named %q, so a storage block cannot pick one",
					hp.Name, backendNames(d), hp.Name)
			}
			s := b.Schema
			out.Storage = &s
		}
		if len(d.Functions) > 0 {
			out.MountFunctions = map[string]hcl.Schema{}
			for _, f := range d.Functions {
				out.MountFunctions[f.Name] = f.Args
			}
		}
		return out, nil
	}
}
