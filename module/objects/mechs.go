package objects

import (
	"crypto"
	"slices"

	"github.com/csctoken/csctoken/module/ck"
)

// Scheme is a signature scheme: what a mechanism asks of the service.
type Scheme int

const (
	// SchemePKCS1 is RSASSA-PKCS1-v1_5.
	SchemePKCS1 Scheme = iota + 1
	// SchemePSS is RSASSA-PSS.
	SchemePSS
	// SchemeECDSA is ECDSA; PKCS#11 signatures are r‖s.
	SchemeECDSA
)

// MechDef describes one signature mechanism. hash is zero for the
// mechanisms whose input is already a hash (CKM_RSA_PKCS takes a
// DigestInfo, CKM_RSA_PKCS_PSS and CKM_ECDSA a bare hash).
type MechDef struct {
	Type    uint
	KeyType uint
	Scheme  Scheme
	Hash    crypto.Hash
}

// SignMechs are the signature mechanisms the module knows.
var SignMechs = []MechDef{
	{ck.CKM_RSA_PKCS, ck.CKK_RSA, SchemePKCS1, 0},
	{ck.CKM_SHA1_RSA_PKCS, ck.CKK_RSA, SchemePKCS1, crypto.SHA1},
	{ck.CKM_SHA224_RSA_PKCS, ck.CKK_RSA, SchemePKCS1, crypto.SHA224},
	{ck.CKM_SHA256_RSA_PKCS, ck.CKK_RSA, SchemePKCS1, crypto.SHA256},
	{ck.CKM_SHA384_RSA_PKCS, ck.CKK_RSA, SchemePKCS1, crypto.SHA384},
	{ck.CKM_SHA512_RSA_PKCS, ck.CKK_RSA, SchemePKCS1, crypto.SHA512},
	{ck.CKM_RSA_PKCS_PSS, ck.CKK_RSA, SchemePSS, 0},
	{ck.CKM_SHA1_RSA_PKCS_PSS, ck.CKK_RSA, SchemePSS, crypto.SHA1},
	{ck.CKM_SHA224_RSA_PKCS_PSS, ck.CKK_RSA, SchemePSS, crypto.SHA224},
	{ck.CKM_SHA256_RSA_PKCS_PSS, ck.CKK_RSA, SchemePSS, crypto.SHA256},
	{ck.CKM_SHA384_RSA_PKCS_PSS, ck.CKK_RSA, SchemePSS, crypto.SHA384},
	{ck.CKM_SHA512_RSA_PKCS_PSS, ck.CKK_RSA, SchemePSS, crypto.SHA512},
	{ck.CKM_ECDSA, ck.CKK_EC, SchemeECDSA, 0},
	{ck.CKM_ECDSA_SHA1, ck.CKK_EC, SchemeECDSA, crypto.SHA1},
	{ck.CKM_ECDSA_SHA224, ck.CKK_EC, SchemeECDSA, crypto.SHA224},
	{ck.CKM_ECDSA_SHA256, ck.CKK_EC, SchemeECDSA, crypto.SHA256},
	{ck.CKM_ECDSA_SHA384, ck.CKK_EC, SchemeECDSA, crypto.SHA384},
	{ck.CKM_ECDSA_SHA512, ck.CKK_EC, SchemeECDSA, crypto.SHA512},
}

// DigestMechs are served locally by C_Digest*.
var DigestMechs = []uint{ck.CKM_SHA_1, ck.CKM_SHA224, ck.CKM_SHA256, ck.CKM_SHA384, ck.CKM_SHA512}

// SignMechByType returns the signature mechanism of type t.
func SignMechByType(t uint) (MechDef, bool) {
	for _, m := range SignMechs {
		if m.Type == t {
			return m, true
		}
	}
	return MechDef{}, false
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
func hashAllowed(algos []string, h HashAlg) bool {
	switch h.Hash {
	case crypto.SHA1, crypto.SHA224:
		return slices.Contains(algos, h.rsaOID) || slices.Contains(algos, h.ecdsaOID)
	}
	return true
}

// ChooseSignAlgo picks the signHash signAlgo for a scheme and hash, and
// the hashAlgorithmOID to send ("" when signAlgo implies the hash).
func ChooseSignAlgo(algos []string, s Scheme, h HashAlg) (signAlgo, hashOID string, ok bool) {
	switch s {
	case SchemePKCS1:
		if slices.Contains(algos, h.rsaOID) {
			return h.rsaOID, "", true
		}
		if slices.Contains(algos, oidRSAEncryption) && hashAllowed(algos, h) {
			return oidRSAEncryption, h.OID, true
		}
	case SchemePSS:
		if slices.Contains(algos, oidRSASSAPSS) && hashAllowed(algos, h) {
			return oidRSASSAPSS, h.OID, true
		}
	case SchemeECDSA:
		if slices.Contains(algos, h.ecdsaOID) {
			return h.ecdsaOID, "", true
		}
		if slices.Contains(algos, oidECPublicKey) && hashAllowed(algos, h) {
			return oidECPublicKey, h.OID, true
		}
	}
	return "", "", false
}

// offeredMechs lists the signature mechanisms a credential supports.
func offeredMechs(algos []string, keyType uint) []uint {
	var out []uint
	for _, m := range SignMechs {
		if m.KeyType != keyType {
			continue
		}
		if m.Hash != 0 {
			h, _ := HashByCrypto(m.Hash)
			if _, _, ok := ChooseSignAlgo(algos, m.Scheme, h); ok {
				out = append(out, m.Type)
			}
			continue
		}
		// Raw mechanisms: offered when any hash works with the scheme.
		for _, h := range hashAlgs {
			if _, _, ok := ChooseSignAlgo(algos, m.Scheme, h); ok {
				out = append(out, m.Type)
				break
			}
		}
	}
	return out
}
