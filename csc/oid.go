package csc

import (
	"crypto"
	"encoding/asn1"
	"fmt"
)

// Hash algorithm OIDs.
const (
	OIDSHA1   = "1.3.14.3.2.26"
	OIDSHA224 = "2.16.840.1.101.3.4.2.4"
	OIDSHA256 = "2.16.840.1.101.3.4.2.1"
	OIDSHA384 = "2.16.840.1.101.3.4.2.2"
	OIDSHA512 = "2.16.840.1.101.3.4.2.3"
)

// Signature algorithm OIDs.
const (
	OIDRSA             = "1.2.840.113549.1.1.1" // rsaEncryption: PKCS#1 v1.5, hash given apart
	OIDRSAPSS          = "1.2.840.113549.1.1.10"
	OIDSHA256WithRSA   = "1.2.840.113549.1.1.11"
	OIDSHA384WithRSA   = "1.2.840.113549.1.1.12"
	OIDSHA512WithRSA   = "1.2.840.113549.1.1.13"
	OIDECPublicKey     = "1.2.840.10045.2.1"
	OIDECDSAWithSHA256 = "1.2.840.10045.4.3.2"
	OIDECDSAWithSHA384 = "1.2.840.10045.4.3.3"
	OIDECDSAWithSHA512 = "1.2.840.10045.4.3.4"
)

// Curve OIDs.
const (
	OIDP256 = "1.2.840.10045.3.1.7"
	OIDP384 = "1.3.132.0.34"
	OIDP521 = "1.3.132.0.35"
)

// OIDMGF1 is id-mgf1, the mask generation function of RSASSA-PSS.
const OIDMGF1 = "1.2.840.113549.1.1.8"

var hashByOID = map[string]crypto.Hash{
	OIDSHA1:   crypto.SHA1,
	OIDSHA224: crypto.SHA224,
	OIDSHA256: crypto.SHA256,
	OIDSHA384: crypto.SHA384,
	OIDSHA512: crypto.SHA512,
}

// HashByOID maps a hash OID to its crypto.Hash (ok false if unknown).
func HashByOID(oid string) (crypto.Hash, bool) {
	h, ok := hashByOID[oid]
	return h, ok
}

// HashOID maps a crypto.Hash to its OID ("" if unknown).
func HashOID(h crypto.Hash) string {
	for oid, v := range hashByOID {
		if v == h {
			return oid
		}
	}
	return ""
}

// SignAlgoHash returns the hash that a signature algorithm OID implies
// (sha256WithRSAEncryption → SHA-256); 0 for rsaEncryption and RSASSA-PSS,
// whose hash is given apart.
func SignAlgoHash(oid string) crypto.Hash {
	switch oid {
	case OIDSHA256WithRSA, OIDECDSAWithSHA256:
		return crypto.SHA256
	case OIDSHA384WithRSA, OIDECDSAWithSHA384:
		return crypto.SHA384
	case OIDSHA512WithRSA, OIDECDSAWithSHA512:
		return crypto.SHA512
	}
	return 0
}

// ParseOID parses a dotted OID string.
func ParseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	var n int
	digits := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 {
				return nil, fmt.Errorf("invalid OID %q", s)
			}
			oid = append(oid, n)
			n, digits = 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || n > (1<<31-1)/10 {
			return nil, fmt.Errorf("invalid OID %q", s)
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("invalid OID %q", s)
	}
	return oid, nil
}
