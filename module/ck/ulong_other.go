//go:build !windows

package ck

import "strconv"

// ULongSize is the size of CK_ULONG in bytes on this platform: C's
// unsigned long, which on Unix has the width of Go's uint.
const ULongSize = strconv.IntSize / 8
