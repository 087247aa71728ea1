//go:build !unix

package redistest

import "syscall"

// Without job control signals there is no pausing: Pause and Resume report
// the error os.Process.Signal gives for a signal it cannot send, and Stop's
// resume is a no-op.
const (
	pauseSignal  = syscall.Signal(-1)
	resumeSignal = syscall.Signal(-1)
)
