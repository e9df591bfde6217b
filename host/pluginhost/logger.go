package pluginhost

import "github.com/hashicorp/go-hclog"

// pluginLogger is the logger go-plugin gets for one plugin. go-plugin
// names the logger of a plugin's stderr after its binary ("zhost" for
// every built-in); pluginLogger ignores that so every line of the plugin,
// its own JSON logs re-emitted at their level and go-plugin's lines about
// the process, appears under the plugin's name.
type pluginLogger struct{ hclog.Logger }

func (l pluginLogger) Named(string) hclog.Logger      { return l.Logger }
func (l pluginLogger) ResetNamed(string) hclog.Logger { return l.Logger }
func (l pluginLogger) With(args ...any) hclog.Logger {
	return pluginLogger{l.Logger.With(args...)}
}

var _ hclog.Logger = pluginLogger{}
