// Package keystore defines the interface between the RSSP and the places
// where credential private keys live: a PKCS#11 token (SoftHSM2 or a real
// HSM, package keystore/p11) or the embedded software keystore (package
// keystore/soft).
//
// A Backend generates keys and signs digests with them. The RSSP never sees a
// private key: it keeps only the opaque reference Generate returns (in its
// database) and the public key.
//
// Concurrency: every Backend is safe for concurrent use by many goroutines;
// Sign calls proceed in parallel up to the backend's own limit (the PKCS#11
// session pool, the number of cores for the software keystore).
package keystore

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"time"
)

// KeyType names a key algorithm and size, as the admin CLI spells it.
type KeyType string

// The key types the RSSP can create.
const (
	RSA2048 KeyType = "rsa-2048"
	RSA3072 KeyType = "rsa-3072"
	ECP256  KeyType = "ec-p256"
	ECP384  KeyType = "ec-p384"
)

// KeyTypes lists every supported KeyType, in the order the CLI shows them.
var KeyTypes = []KeyType{RSA2048, RSA3072, ECP256, ECP384}

// ParseKeyType validates s.
func ParseKeyType(s string) (KeyType, error) {
	for _, k := range KeyTypes {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: %q (want one of rsa-2048, rsa-3072, ec-p256, ec-p384)", ErrUnsupportedKey, s)
}

// Errors that backends return (wrapped with %w).
var (
	// ErrUnsupportedKey: the key type is unknown or not offered by this backend.
	ErrUnsupportedKey = errors.New("unsupported key type")
	// ErrKeyNotFound: the reference names no key in this backend.
	ErrKeyNotFound = errors.New("key not found")
	// ErrInvalidDigest: the digest length does not match the hash in opts, or
	// opts ask for something the key cannot do (PSS on an EC key, ...).
	ErrInvalidDigest = errors.New("invalid digest or signing options")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("keystore closed")
	// ErrUnavailable: the backend cannot sign now and is trying to get
	// back (a PKCS#11 token that went away, an HSM that does not answer).
	// The error may carry a retry hint (see RetryAfter). Callers answer
	// "try again later" (the server: 503 with Retry-After).
	ErrUnavailable = errors.New("keystore unavailable")
	// ErrBusy: every session of the backend stayed in use for longer than
	// the backend waits for one. Callers answer "try again later".
	ErrBusy = errors.New("keystore busy")
)

// RetryAfter returns the retry hint an ErrUnavailable error carries (when
// the backend next tries to reach its device), and whether there is one.
func RetryAfter(err error) (time.Duration, bool) {
	var h interface{ RetryAfter() time.Duration }
	if errors.As(err, &h) {
		return h.RetryAfter(), true
	}
	return 0, false
}

// Backend is a place where private keys live.
type Backend interface {
	// Name is a short word for logs and the credential table: "soft" or "pkcs11".
	Name() string

	// Generate creates a new key pair of type kt. label is a human hint
	// (the credential ID) that backends may store with the key (CKA_LABEL).
	// It returns an opaque reference, to be stored by the caller and passed
	// back to Sign and Delete, and the public key (*rsa.PublicKey or
	// *ecdsa.PublicKey). The private key never leaves the backend in clear:
	// the software keystore returns it sealed inside ref; a PKCS#11 token
	// keeps it non-extractable and returns its CKA_ID.
	Generate(ctx context.Context, kt KeyType, label string) (ref []byte, pub crypto.PublicKey, err error)

	// Sign signs digest (already hashed) with the key ref.
	// opts is a crypto.Hash for RSA PKCS#1 v1.5 and for ECDSA, or
	// *rsa.PSSOptions for RSASSA-PSS (SaltLength rsa.PSSSaltLengthEqualsHash
	// or an explicit length; MGF1 uses the same hash). ECDSA signatures are
	// returned DER-encoded (Ecdsa-Sig-Value), RSA ones as the raw big-endian
	// signature of the modulus' length.
	Sign(ctx context.Context, ref []byte, digest []byte, opts crypto.SignerOpts) ([]byte, error)

	// Delete destroys the key. Deleting an unknown key is not an error.
	Delete(ctx context.Context, ref []byte) error

	// Close releases the backend; it is safe to call more than once.
	Close() error
}

// Checker is implemented by backends that can tell whether they are able
// to sign now, for the server's readiness probe: a PKCS#11 token answers on
// a pooled session that is logged in. A backend without it is always ready.
type Checker interface {
	// Check returns nil when signing can proceed; it must be cheap (a
	// balancer calls it every few seconds) and respect ctx.
	Check(ctx context.Context) error
}

// Availability is implemented by backends that know, without asking their
// device, that they cannot sign now (a PKCS#11 token being re-opened after
// it went away). Callers ask before they spend anything on a signature
// (the service: before it consumes a SAD), so that a client told to retry
// later still has what it needs to retry.
type Availability interface {
	// Available returns nil, or an error wrapping ErrUnavailable. It
	// never waits and never calls the device.
	Available() error
}

// Available is b.Available() when b implements Availability, else nil.
func Available(b Backend) error {
	if a, ok := b.(Availability); ok {
		return a.Available()
	}
	return nil
}

// PoolStats describes a backend's pool of sessions, for metrics.
type PoolStats struct {
	Size     int    // sessions owned
	InUse    int    // sessions borrowed now
	Waits    uint64 // borrows that found no idle session and waited
	Timeouts uint64 // borrows that gave up waiting
}

// Pooled is implemented by backends with a session pool.
type Pooled interface {
	PoolStats() PoolStats
}
