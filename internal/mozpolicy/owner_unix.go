//go:build unix

package mozpolicy

import (
	"os"
	"syscall"
)

// owner returns the file's owner and group, or -1, -1 when unknown.
func owner(fi os.FileInfo) (uid, gid int) {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid), int(sys.Gid)
	}
	return -1, -1
}
