package redisproc

import "syscall"

// sysProcAttr has Linux kill redis-server when the benchmark process dies
// without stopping it (a panic, a -timeout), so no server outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
