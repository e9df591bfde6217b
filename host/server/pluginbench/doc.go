// Package pluginbench holds the benchmarks of host/server over backends
// running as real plugin subprocesses (the production setup), each
// against its baseline measured in the same run: the same operation
// called straight on the plugin. It lives apart from host/server so the
// server's own tests do not depend on the plugin packages.
//
//	go test -run '^$' -bench . ./host/server/pluginbench
package pluginbench
