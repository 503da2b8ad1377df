//go:build unix

package fsutil

import "syscall"

// openFlags keeps an open of a FIFO that replaced the file from waiting for
// a writer.
const openFlags = syscall.O_NONBLOCK
