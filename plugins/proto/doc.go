// Package pluginproto is the generated Go code of the zhost plugin
// protocol, zhost_plugin.proto in this directory: the wire contract
// between the host and a plugin process, precise enough to write a plugin
// in another language. Plugins written in Go use plugins/sdk rather than
// this package. Regenerate with `make proto`.
package pluginproto
