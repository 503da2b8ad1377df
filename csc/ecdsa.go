package csc

// ECDSA signatures on the wire: signHash answers DER (Ecdsa-Sig-Value) or
// raw r‖s, PKCS#11 wants r‖s of the curve's size, X.509 and CMS want DER.
// This file is the one conversion between them, for the client, the
// module, the CLI and the RSSP's PKCS#11 backend.

import (
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrECDSASignature is wrapped when a signature is neither DER nor r‖s.
var ErrECDSASignature = errors.New("not an ECDSA signature (DER or r||s)")

// maxECDSAHalf is the largest r or s in bytes (P-521).
const maxECDSAHalf = 66

// rawSizes are the half-lengths of r‖s accepted when the curve is not
// known: P-224, P-256 (and brainpoolP256), P-384 (and brainpoolP384),
// brainpoolP512, P-521.
var rawSizes = map[int]bool{28: true, 32: true, 48: true, 64: true, 66: true}

// ParseECDSADER parses a strict DER Ecdsa-Sig-Value with positive r and s.
// cryptobyte (not encoding/asn1, whose reflection costs the RSSP's PKCS#11
// backend more than the rest of an ECDSA signature's conversion) refuses
// non-minimal lengths and integers; the re-encoding refuses what is left
// (e.g. a long form where the short one fits).
func ParseECDSADER(sig []byte) (r, s *big.Int, ok bool) {
	if len(sig) < 8 || sig[0] != 0x30 {
		return nil, nil, false
	}
	in := cryptobyte.String(sig)
	var seq cryptobyte.String
	r, s = new(big.Int), new(big.Int)
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(r) || !seq.ReadASN1Integer(s) || !seq.Empty() {
		return nil, nil, false
	}
	if r.Sign() <= 0 || s.Sign() <= 0 || (r.BitLen()+7)/8 > maxECDSAHalf || (s.BitLen()+7)/8 > maxECDSAHalf {
		return nil, nil, false
	}
	again, err := marshalECDSA(r, s)
	if err != nil || string(again) != string(sig) {
		return nil, nil, false
	}
	return r, s, true
}

// marshalECDSA encodes r and s as a DER Ecdsa-Sig-Value.
func marshalECDSA(r, s *big.Int) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(r)
		b.AddASN1BigInt(s)
	})
	return b.Bytes()
}

// ecdsaHalves reads sig as DER, or else as r‖s (size bytes each when size
// > 0; the size of a known curve when size is 0).
func ecdsaHalves(sig []byte, size int) (r, s *big.Int, err error) {
	if r, s, ok := ParseECDSADER(sig); ok {
		return r, s, nil
	}
	n := len(sig)
	switch {
	case size > 0 && n != 2*size:
		return nil, nil, fmt.Errorf("%w: %d bytes, neither DER nor r||s of %d", ErrECDSASignature, n, 2*size)
	case size == 0 && !rawSizes[n/2] || n%2 != 0:
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrECDSASignature, n)
	}
	r = new(big.Int).SetBytes(sig[:n/2])
	s = new(big.Int).SetBytes(sig[n/2:])
	if r.Sign() == 0 || s.Sign() == 0 {
		return nil, nil, fmt.Errorf("%w: r or s is zero", ErrECDSASignature)
	}
	return r, s, nil
}

// ECDSAToDER returns sig, DER or raw r‖s, as a DER Ecdsa-Sig-Value (the
// X.509 and CMS form).
func ECDSAToDER(sig []byte) ([]byte, error) {
	r, s, err := ecdsaHalves(sig, 0)
	if err != nil {
		return nil, err
	}
	return marshalECDSA(r, s)
}

// ECDSAToRaw returns sig, DER or raw r‖s, as r‖s with each half size bytes
// (the curve's field size: 32 for P-256, 48 for P-384, 66 for P-521), the
// form of PKCS#11's CKM_ECDSA.
func ECDSAToRaw(sig []byte, size int) ([]byte, error) {
	if size <= 0 || size > maxECDSAHalf {
		return nil, fmt.Errorf("%w: curve size %d", ErrECDSASignature, size)
	}
	r, s, err := ecdsaHalves(sig, size)
	if err != nil {
		return nil, err
	}
	if (r.BitLen()+7)/8 > size || (s.BitLen()+7)/8 > size {
		return nil, fmt.Errorf("%w: r or s longer than %d bytes", ErrECDSASignature, size)
	}
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out, nil
}

// CurveSize returns the field size in bytes of a curve OID (P-256, P-384,
// P-521), or 0.
func CurveSize(curveOID string) int {
	switch curveOID {
	case OIDP256:
		return 32
	case OIDP384:
		return 48
	case OIDP521:
		return 66
	}
	return 0
}
