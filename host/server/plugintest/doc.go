// Package plugintest checks host/server and host/client over backends
// running as real plugin subprocesses of the zhost binary (the production
// setup): the storage conformance suite through client -> server ->
// plugin, and benchmarks each against its baseline measured in the same
// run (the same operation called straight on the plugin). It lives apart
// from host/server so the server's own tests do not depend on the plugin
// packages.
//
//	go test ./host/server/plugintest
//	go test -run '^$' -bench . ./host/server/plugintest
package plugintest
