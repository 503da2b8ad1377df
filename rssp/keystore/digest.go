package keystore

import (
	"crypto"
	"crypto/rsa"
	"fmt"
)

// SupportedHashes are the digest algorithms backends accept in Sign, in
// the order of preference used in tests and listings.
var SupportedHashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA224, crypto.SHA1}

// CheckDigest validates the digest and options of a Sign call, for backends
// to call first. The hash (opts.HashFunc()) must be one of SupportedHashes
// and digest must have its length. For *rsa.PSSOptions it also returns the
// options (nil otherwise), with a salt length that is
// rsa.PSSSaltLengthEqualsHash, rsa.PSSSaltLengthAuto or positive. Every
// error wraps ErrInvalidDigest.
func CheckDigest(digest []byte, opts crypto.SignerOpts) (crypto.Hash, *rsa.PSSOptions, error) {
	if opts == nil {
		return 0, nil, fmt.Errorf("%w: no signing options (want a crypto.Hash or *rsa.PSSOptions)", ErrInvalidDigest)
	}
	pss, _ := opts.(*rsa.PSSOptions)
	h := opts.HashFunc()
	if !supportedHash(h) {
		return 0, nil, fmt.Errorf("%w: unsupported hash %v", ErrInvalidDigest, h)
	}
	if len(digest) != h.Size() {
		return 0, nil, fmt.Errorf("%w: digest is %d bytes, %v needs %d", ErrInvalidDigest, len(digest), h, h.Size())
	}
	if pss != nil && pss.SaltLength < rsa.PSSSaltLengthEqualsHash {
		return 0, nil, fmt.Errorf("%w: PSS salt length %d", ErrInvalidDigest, pss.SaltLength)
	}
	return h, pss, nil
}

func supportedHash(h crypto.Hash) bool {
	for _, s := range SupportedHashes {
		if h == s {
			return true
		}
	}
	return false
}
