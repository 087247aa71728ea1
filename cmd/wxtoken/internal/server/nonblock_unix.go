//go:build unix

package server

import "syscall"

// nonblock opens a FIFO put in place of a secret file without waiting for
// a writer; the regular-file check then refuses it.
const nonblock = syscall.O_NONBLOCK
