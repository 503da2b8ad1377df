package module

import (
	"crypto"
	"slices"

	"github.com/csctoken/csctoken/module/ck"
)

type scheme int

const (
	schemePKCS1 scheme = iota + 1
	schemePSS
	schemeECDSA
)

// mechDef describes one signature mechanism. hash is zero for the
// mechanisms whose input is already a hash (CKM_RSA_PKCS takes a
// DigestInfo, CKM_RSA_PKCS_PSS and CKM_ECDSA a bare hash).
type mechDef struct {
	typ     uint
	keyType uint
	scheme  scheme
	hash    crypto.Hash
}

var signMechs = []mechDef{
	{ck.CKM_RSA_PKCS, ck.CKK_RSA, schemePKCS1, 0},
	{ck.CKM_SHA1_RSA_PKCS, ck.CKK_RSA, schemePKCS1, crypto.SHA1},
	{ck.CKM_SHA224_RSA_PKCS, ck.CKK_RSA, schemePKCS1, crypto.SHA224},
	{ck.CKM_SHA256_RSA_PKCS, ck.CKK_RSA, schemePKCS1, crypto.SHA256},
	{ck.CKM_SHA384_RSA_PKCS, ck.CKK_RSA, schemePKCS1, crypto.SHA384},
	{ck.CKM_SHA512_RSA_PKCS, ck.CKK_RSA, schemePKCS1, crypto.SHA512},
	{ck.CKM_RSA_PKCS_PSS, ck.CKK_RSA, schemePSS, 0},
	{ck.CKM_SHA1_RSA_PKCS_PSS, ck.CKK_RSA, schemePSS, crypto.SHA1},
	{ck.CKM_SHA224_RSA_PKCS_PSS, ck.CKK_RSA, schemePSS, crypto.SHA224},
	{ck.CKM_SHA256_RSA_PKCS_PSS, ck.CKK_RSA, schemePSS, crypto.SHA256},
	{ck.CKM_SHA384_RSA_PKCS_PSS, ck.CKK_RSA, schemePSS, crypto.SHA384},
	{ck.CKM_SHA512_RSA_PKCS_PSS, ck.CKK_RSA, schemePSS, crypto.SHA512},
	{ck.CKM_ECDSA, ck.CKK_EC, schemeECDSA, 0},
	{ck.CKM_ECDSA_SHA1, ck.CKK_EC, schemeECDSA, crypto.SHA1},
	{ck.CKM_ECDSA_SHA224, ck.CKK_EC, schemeECDSA, crypto.SHA224},
	{ck.CKM_ECDSA_SHA256, ck.CKK_EC, schemeECDSA, crypto.SHA256},
	{ck.CKM_ECDSA_SHA384, ck.CKK_EC, schemeECDSA, crypto.SHA384},
	{ck.CKM_ECDSA_SHA512, ck.CKK_EC, schemeECDSA, crypto.SHA512},
}

// digestMechs are served locally by C_Digest*.
var digestMechs = []uint{ck.CKM_SHA_1, ck.CKM_SHA224, ck.CKM_SHA256, ck.CKM_SHA384, ck.CKM_SHA512}

func signMechByType(t uint) (mechDef, bool) {
	for _, m := range signMechs {
		if m.typ == t {
			return m, true
		}
	}
	return mechDef{}, false
}

// signAlgos is a credential's key/algo list, or the usual algorithms of
// its key type when the service gave none.
func signAlgos(c *Credential, keyType uint) []string {
	if len(c.KeyAlgos) > 0 {
		return c.KeyAlgos
	}
	if keyType == ck.CKK_EC {
		return []string{oidECDSAWithSHA256, oidECDSAWithSHA384, oidECDSAWithSHA512}
	}
	return []string{oidRSAEncryption, oidSHA256WithRSA, oidSHA384WithRSA, oidSHA512WithRSA, oidRSASSAPSS}
}

// hashAllowed: SHA-256 and stronger always; SHA-1 and SHA-224 only where
// the service lists a signature algorithm using them (docs/mapping.md, "SHA-1").
func hashAllowed(algos []string, h hashAlg) bool {
	switch h.hash {
	case crypto.SHA1, crypto.SHA224:
		return slices.Contains(algos, h.rsaOID) || slices.Contains(algos, h.ecdsaOID)
	}
	return true
}

// chooseSignAlgo picks the signHash signAlgo for a scheme and hash, and
// the hashAlgorithmOID to send ("" when signAlgo implies the hash).
func chooseSignAlgo(algos []string, s scheme, h hashAlg) (signAlgo, hashOID string, ok bool) {
	switch s {
	case schemePKCS1:
		if slices.Contains(algos, h.rsaOID) {
			return h.rsaOID, "", true
		}
		if slices.Contains(algos, oidRSAEncryption) && hashAllowed(algos, h) {
			return oidRSAEncryption, h.oid, true
		}
	case schemePSS:
		if slices.Contains(algos, oidRSASSAPSS) && hashAllowed(algos, h) {
			return oidRSASSAPSS, h.oid, true
		}
	case schemeECDSA:
		if slices.Contains(algos, h.ecdsaOID) {
			return h.ecdsaOID, "", true
		}
		if slices.Contains(algos, oidECPublicKey) && hashAllowed(algos, h) {
			return oidECPublicKey, h.oid, true
		}
	}
	return "", "", false
}

// offeredMechs lists the signature mechanisms a credential supports.
func offeredMechs(algos []string, keyType uint) []uint {
	var out []uint
	for _, m := range signMechs {
		if m.keyType != keyType {
			continue
		}
		if m.hash != 0 {
			h, _ := hashByCrypto(m.hash)
			if _, _, ok := chooseSignAlgo(algos, m.scheme, h); ok {
				out = append(out, m.typ)
			}
			continue
		}
		// Raw mechanisms: offered when any hash works with the scheme.
		for _, h := range hashAlgs {
			if _, _, ok := chooseSignAlgo(algos, m.scheme, h); ok {
				out = append(out, m.typ)
				break
			}
		}
	}
	return out
}
