package objects

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"math/big"

	"github.com/csctoken/csctoken/module/ck"
)

// VerifyDigest checks a PKCS#11-form signature over a digest with
// the key's public key: nil, or CKR_SIGNATURE_LEN_RANGE or
// CKR_SIGNATURE_INVALID.
func (k *KeyInfo) VerifyDigest(sc Scheme, h HashAlg, digest, sig []byte, saltLen int) error {
	if len(sig) != k.SigLen {
		return ck.CKR_SIGNATURE_LEN_RANGE
	}
	var ok bool
	switch sc {
	case SchemePKCS1:
		ok = rsa.VerifyPKCS1v15(k.RSAPub, h.Hash, digest, sig) == nil
	case SchemePSS:
		ok = rsa.VerifyPSS(k.RSAPub, h.Hash, digest, sig, &rsa.PSSOptions{SaltLength: saltLen, Hash: h.Hash}) == nil
	case SchemeECDSA:
		n := len(sig) / 2
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		ok = ecdsa.Verify(k.ecPub, digest, r, s)
	}
	if !ok {
		return ck.CKR_SIGNATURE_INVALID
	}
	return nil
}
