package redistest

import "syscall"

// sysProcAttr asks Linux to kill redis-server when the test binary dies
// without running its cleanups (a panic or a -timeout), so that no server
// outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
