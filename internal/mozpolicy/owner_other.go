//go:build !unix

package mozpolicy

import "os"

// owner: files have no Unix owner here (Windows); the new file keeps the
// creator's, as policies.json is written by an administrator anyway.
func owner(os.FileInfo) (uid, gid int) { return -1, -1 }
