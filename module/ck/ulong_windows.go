//go:build windows

package ck

// ULongSize is the size of CK_ULONG in bytes on this platform (Windows
// defines CK_ULONG as a 32-bit unsigned long even on 64-bit systems).
const ULongSize = 4
