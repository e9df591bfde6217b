//go:build !linux

package pluginhost

import "syscall"

// pluginSysProcAttr: without a parent-death signal, plugins built with the
// SDK notice the host is gone by watching their parent pid.
func pluginSysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup: plugins share the host's process group here; nothing to do.
func killGroup(pid int) {}
