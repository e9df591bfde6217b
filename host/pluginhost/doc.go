// Package pluginhost is the host side of zhost's plugins, part of layer 9
// (the host): it starts plugin processes, supervises and restarts them,
// and gives the rest of the host a storage.Storage per storage block and
// mount function calls, whether a backend runs in a plugin process or in
// process.
//
// A Manager knows the built-in plugin (the zhost binary re-executed as
// `zhost plugin serve builtin`; Options.ZhostPath, default os.Executable)
// and the external plugins added from `plugin "NAME" { path, sha256 }`
// blocks or found in the plugin_dir as zhost-plugin-NAME:
//
//	m, err := pluginhost.NewManager(pluginhost.Options{Logger: logger, PluginDir: cfg.PluginDir})
//	if err != nil { ... }
//	defer m.Close() // closes storages, then stops every plugin process
//	for _, p := range cfg.Plugins {
//		if err := m.Add(pluginhost.SpecFromConfig(p)); err != nil { ... }
//	}
//	st, err := m.OpenStorage(ctx, pluginhost.StorageSpecFromConfig(cfg.Storage("main")))
//	target, err := m.Resolve(ctx, mount.Plugin, sdk.MountRequest{Function: mount.Function, Path: mount.Path, Args: mount.Args})
//
// Plugins start on first use. Before every start the binary's sha256 is
// checked when the spec has one (go-plugin's SecureConfig). Start errors —
// missing binary, bad checksum, junk on stdout, no handshake within
// StartTimeout, exit before the handshake — name the plugin and its config
// line and match ErrBinaryNotFound, ErrChecksum or ErrHandshake.
//
// A plugin's log lines (hclog JSON on its stderr) appear under
// Logger.Named(plugin name) at their own level; the plugin is told the
// host's level so it does not produce lines the host would drop.
//
// When a plugin process dies, calls in flight fail at once with an error
// naming the plugin and matching sdk.ErrPluginUnavailable; the host
// restarts it after a backoff that doubles per crash (MinBackoff up to
// MaxBackoff) and reopens its storages on their next call. After
// MaxCrashes crashes in a row the plugin is marked failed (ErrFailed) and
// no longer restarted. A plugin that hangs is treated the same way: a
// storage call made without a deadline of its own that has no answer
// within HangTimeout (sdk.Client.SetHangWatch) gets the process killed,
// logged as hung, and the call fails with sdk.ErrPluginUnavailable.
// Plugin processes never outlive the host: Close
// stops them, and on Linux each gets SIGTERM from the kernel if the host
// dies by any route (plugins built with the SDK also watch their parent).
//
// PluginSchemas feeds hcl.Options.PluginSchemas, so `zhost validate`
// checks a plugin's storage blocks and mount args at their lines.
package pluginhost
