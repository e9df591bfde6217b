package pluginhost

import "syscall"

// pluginSysProcAttr puts a plugin in its own process group (terminal
// signals reach only the host, which stops plugins after closing their
// storages) and has the kernel send it SIGTERM if the host dies by any
// route, SIGKILL included. Plugins built with the SDK close their storages
// on SIGTERM and also watch their parent pid.
func pluginSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// killGroup kills what is left of a plugin's process group (a plugin that
// is a shell script leaves its children behind otherwise, holding its
// pipes open).
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
