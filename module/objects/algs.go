package objects

import (
	"crypto"
	_ "crypto/sha1" // registers SHA-1 for crypto.Hash.New
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/csctoken/csctoken/module/ck"
)

// OIDs used on the CSC wire (docs/mapping.md, "CSC notes").
const (
	oidSHA1   = "1.3.14.3.2.26"
	oidSHA224 = "2.16.840.1.101.3.4.2.4"
	oidSHA256 = "2.16.840.1.101.3.4.2.1"
	oidSHA384 = "2.16.840.1.101.3.4.2.2"
	oidSHA512 = "2.16.840.1.101.3.4.2.3"

	oidRSAEncryption = "1.2.840.113549.1.1.1"
	oidSHA1WithRSA   = "1.2.840.113549.1.1.5"
	oidSHA224WithRSA = "1.2.840.113549.1.1.14"
	oidSHA256WithRSA = "1.2.840.113549.1.1.11"
	oidSHA384WithRSA = "1.2.840.113549.1.1.12"
	oidSHA512WithRSA = "1.2.840.113549.1.1.13"
	oidRSASSAPSS     = "1.2.840.113549.1.1.10"
	oidMGF1          = "1.2.840.113549.1.1.8"

	oidECPublicKey     = "1.2.840.10045.2.1"
	oidECDSAWithSHA1   = "1.2.840.10045.4.1"
	oidECDSAWithSHA224 = "1.2.840.10045.4.3.1"
	oidECDSAWithSHA256 = "1.2.840.10045.4.3.2"
	oidECDSAWithSHA384 = "1.2.840.10045.4.3.3"
	oidECDSAWithSHA512 = "1.2.840.10045.4.3.4"
)

// HashAlg ties a hash to its PKCS#11 and ASN.1 names.
type HashAlg struct {
	Hash       crypto.Hash
	OID        string
	digestMech uint // CKM_SHA256, ...
	mgf        uint // CKG_MGF1_SHA256, ...
	rsaOID     string
	ecdsaOID   string
}

var hashAlgs = []HashAlg{
	{crypto.SHA1, oidSHA1, ck.CKM_SHA_1, ck.CKG_MGF1_SHA1, oidSHA1WithRSA, oidECDSAWithSHA1},
	{crypto.SHA224, oidSHA224, ck.CKM_SHA224, ck.CKG_MGF1_SHA224, oidSHA224WithRSA, oidECDSAWithSHA224},
	{crypto.SHA256, oidSHA256, ck.CKM_SHA256, ck.CKG_MGF1_SHA256, oidSHA256WithRSA, oidECDSAWithSHA256},
	{crypto.SHA384, oidSHA384, ck.CKM_SHA384, ck.CKG_MGF1_SHA384, oidSHA384WithRSA, oidECDSAWithSHA384},
	{crypto.SHA512, oidSHA512, ck.CKM_SHA512, ck.CKG_MGF1_SHA512, oidSHA512WithRSA, oidECDSAWithSHA512},
}

// HashByCrypto returns the hash of h, if the module knows it.
func HashByCrypto(h crypto.Hash) (HashAlg, bool) {
	for _, a := range hashAlgs {
		if a.Hash == h {
			return a, true
		}
	}
	return HashAlg{}, false
}

// HashByOID returns the hash of the dotted OID oid.
func HashByOID(oid string) (HashAlg, bool) {
	for _, a := range hashAlgs {
		if a.OID == oid {
			return a, true
		}
	}
	return HashAlg{}, false
}

// HashByDigestMech returns the hash of the digest mechanism m (CKM_SHA256...).
func HashByDigestMech(m uint) (HashAlg, bool) {
	for _, a := range hashAlgs {
		if a.digestMech == m {
			return a, true
		}
	}
	return HashAlg{}, false
}

// HashByMGF returns the hash of the MGF1 generator m (CKG_MGF1_SHA256...).
func HashByMGF(m uint) (HashAlg, bool) {
	for _, a := range hashAlgs {
		if a.mgf == m {
			return a, true
		}
	}
	return HashAlg{}, false
}

// HashBySize returns the hash whose digests are n bytes long.
func HashBySize(n int) (HashAlg, bool) {
	for _, a := range hashAlgs {
		if a.Hash.Size() == n {
			return a, true
		}
	}
	return HashAlg{}, false
}

var errDigestInfo = errors.New("not a DER DigestInfo")

// ParseDigestInfo parses the input of CKM_RSA_PKCS, a DER DigestInfo
//
//	DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }
//
// with NULL or absent parameters, and returns the hash and the digest. It
// rejects trailing data, unknown hashes (MD5, bare MD5||SHA-1 input from
// TLS 1.0) and digests of the wrong length.
func ParseDigestInfo(b []byte) (HashAlg, []byte, error) {
	s := cryptobyte.String(b)
	var di, algID, digest cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&di, cbasn1.SEQUENCE) || !s.Empty() {
		return HashAlg{}, nil, errDigestInfo
	}
	if !di.ReadASN1(&algID, cbasn1.SEQUENCE) || !algID.ReadASN1ObjectIdentifier(&oid) {
		return HashAlg{}, nil, errDigestInfo
	}
	if !algID.Empty() {
		var null cryptobyte.String
		if !algID.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !algID.Empty() {
			return HashAlg{}, nil, errDigestInfo
		}
	}
	if !di.ReadASN1(&digest, cbasn1.OCTET_STRING) || !di.Empty() {
		return HashAlg{}, nil, errDigestInfo
	}
	h, ok := HashByOID(oid.String())
	if !ok {
		return HashAlg{}, nil, fmt.Errorf("%w: unsupported hash %s", errDigestInfo, oid)
	}
	if len(digest) != h.Hash.Size() {
		return HashAlg{}, nil, fmt.Errorf("%w: %d-byte digest for %s", errDigestInfo, len(digest), h.Hash)
	}
	return h, slices.Clone([]byte(digest)), nil
}

// DigestInfo builds the DER DigestInfo for a digest (with NULL parameters).
func DigestInfo(h HashAlg, digest []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addAlgID(b, h.OID)
		b.AddASN1OctetString(digest)
	})
	return b.BytesOrPanic()
}

func mustOID(s string) asn1.ObjectIdentifier {
	var oid asn1.ObjectIdentifier
	var n int
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			oid = append(oid, n)
			n = 0
			continue
		}
		n = n*10 + int(s[i]-'0')
	}
	return oid
}

// addAlgID adds AlgorithmIdentifier { oid, NULL }.
func addAlgID(b *cryptobyte.Builder, oid string) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(mustOID(oid))
		b.AddASN1NULL()
	})
}

// PSSParamsDER encodes RSASSA-PSS-params (RFC 8017 A.2.3) in DER, leaving
// out fields equal to their DEFAULT (SHA-1, MGF1-SHA-1, salt 20, trailer 1).
func PSSParamsDER(h, mgf HashAlg, saltLen int) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if h.Hash != crypto.SHA1 {
			b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				addAlgID(b, h.OID)
			})
		}
		if mgf.Hash != crypto.SHA1 {
			b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(mustOID(oidMGF1))
					addAlgID(b, mgf.OID)
				})
			})
		}
		if saltLen != 20 {
			b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1Int64(int64(saltLen))
			})
		}
	})
	return b.BytesOrPanic()
}

// RSAFixed left-pads an RSA signature to the modulus length k.
func RSAFixed(sig []byte, k int) ([]byte, error) {
	if len(sig) > k {
		// Tolerate leading zero bytes beyond k.
		i := 0
		for len(sig)-i > k && sig[i] == 0 {
			i++
		}
		sig = sig[i:]
		if len(sig) > k {
			return nil, fmt.Errorf("RSA signature of %d bytes for a %d-byte modulus", len(sig), k)
		}
	}
	out := make([]byte, k)
	copy(out[k-len(sig):], sig)
	return out, nil
}
