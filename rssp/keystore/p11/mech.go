//go:build cgo

package p11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/miekg/pkcs11"
)

// keySpec describes how to generate one keystore.KeyType in a token.
type keySpec struct {
	keyType uint // CKK_RSA or CKK_EC
	bits    int  // RSA modulus size
	curve   elliptic.Curve
	oid     asn1.ObjectIdentifier // named curve, for CKA_EC_PARAMS
}

var keySpecs = map[keystore.KeyType]keySpec{
	keystore.RSA2048: {keyType: pkcs11.CKK_RSA, bits: 2048},
	keystore.RSA3072: {keyType: pkcs11.CKK_RSA, bits: 3072},
	keystore.ECP256:  {keyType: pkcs11.CKK_EC, curve: elliptic.P256(), oid: asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}},
	keystore.ECP384:  {keyType: pkcs11.CKK_EC, curve: elliptic.P384(), oid: asn1.ObjectIdentifier{1, 3, 132, 0, 34}},
}

// hashAlg maps a hash to its DigestInfo algorithm OID, its PKCS#11 digest
// mechanism and its MGF1 generator (for PSS).
var hashAlgs = map[crypto.Hash]struct {
	oid  asn1.ObjectIdentifier
	mech uint
	mgf  uint
}{
	crypto.SHA1:   {asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1},
	crypto.SHA224: {asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}, pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224},
	crypto.SHA256: {asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256},
	crypto.SHA384: {asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384},
	crypto.SHA512: {asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512},
}

// digestInfo returns the DER DigestInfo (RFC 8017 §9.2) that CKM_RSA_PKCS
// signs for a PKCS#1 v1.5 signature: the hash's AlgorithmIdentifier with
// NULL parameters, and the digest.
func digestInfo(h crypto.Hash, digest []byte) ([]byte, error) {
	alg, ok := hashAlgs[h]
	if !ok {
		return nil, fmt.Errorf("%w: no DigestInfo for %v", keystore.ErrInvalidDigest, h)
	}
	return asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: alg.oid, Parameters: asn1.NullRawValue},
		Digest:    digest,
	})
}

// pssSaltLength resolves opts.SaltLength for a key of modBits bits as Go's
// rsa.SignPSS does: EqualsHash is the hash size, Auto the largest salt
// that fits (RFC 8017 §9.1.1: emLen - hLen - 2).
func pssSaltLength(opts *rsa.PSSOptions, h crypto.Hash, modBits int) (int, error) {
	maxSalt := (modBits-1+7)/8 - h.Size() - 2
	salt := opts.SaltLength
	switch salt {
	case rsa.PSSSaltLengthEqualsHash:
		salt = h.Size()
	case rsa.PSSSaltLengthAuto:
		salt = maxSalt
	}
	if salt < 0 || salt > maxSalt {
		return 0, fmt.Errorf("%w: PSS salt length %d does not fit a %d-bit key with %v", keystore.ErrInvalidDigest, salt, modBits, h)
	}
	return salt, nil
}

// signMechanism picks the mechanism and the data to pass to C_Sign.
func signMechanism(k keyObject, h crypto.Hash, pss *rsa.PSSOptions, digest []byte) ([]*pkcs11.Mechanism, []byte, error) {
	switch k.keyType {
	case pkcs11.CKK_RSA:
		if pss != nil {
			salt, err := pssSaltLength(pss, h, k.bits)
			if err != nil {
				return nil, nil, err
			}
			alg := hashAlgs[h] // present: CheckDigest accepted h
			params := pkcs11.NewPSSParams(alg.mech, alg.mgf, uint(salt))
			return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, params)}, digest, nil
		}
		di, err := digestInfo(h, digest)
		if err != nil {
			return nil, nil, err
		}
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, di, nil
	case pkcs11.CKK_EC:
		if pss != nil {
			return nil, nil, fmt.Errorf("%w: RSASSA-PSS requested for an EC key", keystore.ErrInvalidDigest)
		}
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, digest, nil
	default:
		return nil, nil, fmt.Errorf("p11: key type 0x%x is not RSA or EC", k.keyType)
	}
}

// ecdsaDER converts the PKCS#11 ECDSA signature r||s (two big-endian
// integers of equal length) to DER Ecdsa-Sig-Value (csc.ECDSAToDER, the
// one conversion).
func ecdsaDER(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, fmt.Errorf("p11: ECDSA signature of odd length %d", len(raw))
	}
	der, err := csc.ECDSAToDER(raw)
	if err != nil {
		return nil, fmt.Errorf("p11: %w", err)
	}
	return der, nil
}

// parseECPoint decodes CKA_EC_POINT. PKCS#11 specifies a DER OCTET STRING
// holding the uncompressed point; some tokens return the bare point. The
// lengths differ, so the two forms cannot be confused.
func parseECPoint(curve elliptic.Curve, v []byte) (*ecdsa.PublicKey, error) {
	size := (curve.Params().BitSize + 7) / 8
	point := v
	if len(v) != 1+2*size {
		var inner []byte
		rest, err := asn1.Unmarshal(v, &inner)
		if err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("p11: CKA_EC_POINT is neither a point nor a DER OCTET STRING (%d bytes)", len(v))
		}
		point = inner
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("p11: CKA_EC_POINT: %w", err)
	}
	return pub, nil
}

// rsaPublic builds an RSA public key from CKA_MODULUS and
// CKA_PUBLIC_EXPONENT.
func rsaPublic(modulus, exponent []byte) (*rsa.PublicKey, error) {
	e := new(big.Int).SetBytes(exponent)
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
		return nil, fmt.Errorf("p11: unusable RSA public exponent %v", e)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(modulus), E: int(e.Int64())}, nil
}

// ulong decodes a CK_ULONG attribute value (native byte order).
func ulong(v []byte) (uint, error) {
	switch len(v) {
	case 8:
		return uint(binary.NativeEndian.Uint64(v)), nil
	case 4:
		return uint(binary.NativeEndian.Uint32(v)), nil
	default:
		return 0, errors.New("p11: CK_ULONG attribute of unexpected length")
	}
}
