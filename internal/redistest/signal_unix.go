//go:build unix

package redistest

import "syscall"

// pauseSignal and resumeSignal freeze and thaw a process.
const (
	pauseSignal  = syscall.SIGSTOP
	resumeSignal = syscall.SIGCONT
)
