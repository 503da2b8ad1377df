//go:build !unix

package fsutil

const openFlags = 0
