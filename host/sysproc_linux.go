package host

import "syscall"

// childSysProcAttr puts a child in its own process group (so terminal
// signals reach only the supervisor, which stops children in order) and
// asks the kernel to send it SIGTERM if the supervisor dies.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
