// Package ck holds the PKCS#11 constants and small value types that the
// csctoken module needs, written out as Go constants (values per PKCS#11
// v2.40 and v3.0). It deliberately does not import github.com/miekg/pkcs11:
// that package would link its C helpers into libcsctoken.so.
//
// Names keep the spelling of the specification (CKR_OK, CKA_CLASS, ...) so
// that code reads like the standard and the C layer maps them by eye.
//
// CK_ULONG is 64 bits wide on LP64 systems and 32 bits wide on Windows;
// ULongSize gives the width used when attribute values and mechanism
// parameters are encoded as bytes.
package ck

import "encoding/binary"

// UnavailableInformation is CK_UNAVAILABLE_INFORMATION (~0) as a Go uint.
// The C layer converts it to (CK_ULONG)-1 on every platform.
const UnavailableInformation = ^uint(0)

// EffectivelyInfinite is CK_EFFECTIVELY_INFINITE.
const EffectivelyInfinite = 0

// InvalidHandle is CK_INVALID_HANDLE.
const InvalidHandle = 0

// Version is a CK_VERSION.
type Version struct {
	Major, Minor byte
}

// Mechanism is a CK_MECHANISM: the type plus the raw bytes of pParameter
// (nil when pParameter is NULL). Structured parameters are encoded with
// ULongSize-wide native-endian CK_ULONG fields, exactly as they lie in C
// memory.
type Mechanism struct {
	Type      uint
	Parameter []byte
}

// Attribute is a CK_ATTRIBUTE with its value as bytes.
type Attribute struct {
	Type  uint
	Value []byte
}

// PSSParams is CK_RSA_PKCS_PSS_PARAMS.
type PSSParams struct {
	HashAlg uint // CKM_SHA256, ...
	MGF     uint // CKG_MGF1_SHA256, ...
	SLen    uint // salt length in bytes
}

// Encode returns p as the bytes of a C CK_RSA_PKCS_PSS_PARAMS.
func (p PSSParams) Encode() []byte {
	b := make([]byte, 0, 3*ULongSize)
	b = AppendULong(b, p.HashAlg)
	b = AppendULong(b, p.MGF)
	return AppendULong(b, p.SLen)
}

// DecodePSSParams parses the bytes of a C CK_RSA_PKCS_PSS_PARAMS.
func DecodePSSParams(b []byte) (PSSParams, bool) {
	if len(b) != 3*ULongSize {
		return PSSParams{}, false
	}
	return PSSParams{
		HashAlg: ULong(b[:ULongSize]),
		MGF:     ULong(b[ULongSize : 2*ULongSize]),
		SLen:    ULong(b[2*ULongSize:]),
	}, true
}

// AppendULong appends v as a native-endian CK_ULONG.
func AppendULong(b []byte, v uint) []byte {
	if ULongSize == 4 {
		return binary.NativeEndian.AppendUint32(b, uint32(v))
	}
	return binary.NativeEndian.AppendUint64(b, uint64(v))
}

// ULongBytes encodes v as a native-endian CK_ULONG.
func ULongBytes(v uint) []byte { return AppendULong(nil, v) }

// ULong decodes a native-endian CK_ULONG; b must be ULongSize bytes.
func ULong(b []byte) uint {
	if ULongSize == 4 {
		return uint(binary.NativeEndian.Uint32(b))
	}
	return uint(binary.NativeEndian.Uint64(b))
}

// Bool encodes a CK_BBOOL.
func Bool(v bool) []byte {
	if v {
		return []byte{CK_TRUE}
	}
	return []byte{CK_FALSE}
}

// PadString returns s as a fixed-width CK string field of n bytes: cut to
// n bytes (never inside a UTF-8 sequence), then padded with spaces. No NUL
// terminator, per the specification's rules for CK_INFO, CK_SLOT_INFO and
// CK_TOKEN_INFO.
func PadString(s string, n int) []byte {
	b := []byte(s)
	if len(b) > n {
		b = b[:n]
		// Back off to a rune boundary so the field stays valid UTF-8.
		for len(b) > 0 && b[len(b)-1]&0xC0 == 0x80 {
			b = b[:len(b)-1]
		}
		if len(b) > 0 && b[len(b)-1] >= 0xC0 {
			b = b[:len(b)-1]
		}
	}
	out := make([]byte, n)
	copy(out, b)
	for i := len(b); i < n; i++ {
		out[i] = ' '
	}
	return out
}

// CK_BBOOL values.
const (
	CK_FALSE = 0
	CK_TRUE  = 1
)
