package service

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"

	"github.com/csctoken/csctoken/csc"
)

// hashes the service accepts for signatures (the CSC spec asks for
// SHA-256 or stronger).
var allowedHashes = map[string]crypto.Hash{
	csc.OIDSHA256: crypto.SHA256,
	csc.OIDSHA384: crypto.SHA384,
	csc.OIDSHA512: crypto.SHA512,
}

// keyAlgos returns the signAlgo OIDs a public key may use, and its length
// and curve OID for credentials/info.
func keyAlgos(pub crypto.PublicKey) (algos []string, bits int, curve string) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return []string{csc.OIDRSA, csc.OIDSHA256WithRSA, csc.OIDSHA384WithRSA, csc.OIDSHA512WithRSA, csc.OIDRSAPSS},
			k.N.BitLen(), ""
	case *ecdsa.PublicKey:
		algos = []string{csc.OIDECDSAWithSHA256, csc.OIDECDSAWithSHA384, csc.OIDECDSAWithSHA512}
		switch k.Curve {
		case elliptic.P256():
			curve = csc.OIDP256
		case elliptic.P384():
			curve = csc.OIDP384
		case elliptic.P521():
			curve = csc.OIDP521
		}
		return algos, k.Curve.Params().BitSize, curve
	}
	return nil, 0, ""
}

// supportedSignAlgos lists every signAlgo the service offers (for info).
var supportedSignAlgos = []string{
	csc.OIDRSA, csc.OIDSHA256WithRSA, csc.OIDSHA384WithRSA, csc.OIDSHA512WithRSA, csc.OIDRSAPSS,
	csc.OIDECDSAWithSHA256, csc.OIDECDSAWithSHA384, csc.OIDECDSAWithSHA512,
}

// SupportedSignAlgos returns the signature algorithm OIDs the service offers.
func SupportedSignAlgos() []string { return append([]string(nil), supportedSignAlgos...) }

// signParams resolves signAlgo, hashAlgorithmOID and signAlgoParams into the
// hash every digest must have and the options for keystore.Backend.Sign.
func signParams(pub crypto.PublicKey, signAlgo, hashOID string, params []byte) (crypto.Hash, crypto.SignerOpts, error) {
	algos, _, _ := keyAlgos(pub)
	found := false
	for _, a := range algos {
		if a == signAlgo {
			found = true
		}
	}
	if signAlgo == "" {
		return 0, nil, badRequest("Missing string parameter signAlgo")
	}
	if !found {
		return 0, nil, badRequest("signAlgo %s is not supported by this credential's key", signAlgo)
	}
	var given crypto.Hash
	if hashOID != "" {
		h, ok := allowedHashes[hashOID]
		if !ok {
			return 0, nil, badRequest("hashAlgorithmOID %s is not supported (use SHA-256, SHA-384 or SHA-512)", hashOID)
		}
		given = h
	}
	switch signAlgo {
	case csc.OIDRSA:
		if given == 0 {
			return 0, nil, badRequest("Missing hashAlgorithmOID (required when signAlgo is 1.2.840.113549.1.1.1)")
		}
		return given, given, nil
	case csc.OIDRSAPSS:
		h := given
		salt := 0
		if len(params) > 0 {
			p, err := csc.ParsePSSParams(params)
			if err != nil {
				return 0, nil, badRequest("Invalid parameter signAlgoParams: %v", errors.Unwrap(err))
			}
			if _, ok := allowedHashes[csc.HashOID(p.Hash)]; !ok {
				return 0, nil, badRequest("signAlgoParams: hash %v is not supported", p.Hash)
			}
			if given != 0 && p.Hash != given {
				return 0, nil, badRequest("signAlgoParams hash does not match hashAlgorithmOID")
			}
			if p.SaltLength == 0 {
				return 0, nil, badRequest("signAlgoParams: a salt length of 0 is not supported")
			}
			h, salt = p.Hash, p.SaltLength
		}
		if h == 0 {
			return 0, nil, badRequest("Missing hashAlgorithmOID or signAlgoParams for RSASSA-PSS")
		}
		if salt == 0 {
			salt = h.Size()
		}
		return h, &rsa.PSSOptions{SaltLength: salt, Hash: h}, nil
	default:
		h := csc.SignAlgoHash(signAlgo)
		if given != 0 && given != h {
			return 0, nil, badRequest("hashAlgorithmOID does not match signAlgo %s", signAlgo)
		}
		return h, h, nil
	}
}
