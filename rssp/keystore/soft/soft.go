// Package soft is the embedded software keystore, the RSSP's default key
// backend: keys are generated in process memory with crypto/rand and leave
// it only sealed under the key-encryption key (package sealer).
//
// The reference Generate returns is self-contained: a format byte, the key
// type in clear, and the PKCS#8 private key sealed with AES-256-GCM under
// the KEK, with the additional data "csctoken keystore/soft v1 <key type>"
// binding the key type and this use. The caller stores it in its database;
// the private key is never written anywhere in clear. Anyone holding a
// reference and the KEK can use the key, so the database and the KEK must
// be kept apart (see package sealer).
//
// Because the key travels inside its reference, Delete cannot erase it: it
// drops the key from the cache and records the reference as deleted for the
// life of the Backend, so later Sign calls fail. Destroying the stored
// reference is the caller's job.
//
// Concurrency: a *Backend is safe for concurrent use. Sign keeps a bounded
// LRU cache of unsealed, parsed keys (keyed by the SHA-256 of the reference)
// so repeated signatures skip the unseal and the RSA precomputation; signing
// itself runs in the calling goroutine, in parallel up to the number of
// cores.
//
// Usage:
//
//	b := soft.New(kek)
//	defer b.Close()
//	ref, pub, err := b.Generate(ctx, keystore.ECP256, "cred-1")
//	sig, err := b.Sign(ctx, ref, digest, crypto.SHA256)
package soft

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/keystore/internal/lru"
	"github.com/csctoken/csctoken/rssp/sealer"
)

// DefaultCacheSize is how many unsealed keys a Backend keeps by default.
const DefaultCacheSize = 1024

// refVersion is the first byte of every reference.
const refVersion byte = 1

// aadPrefix, followed by the key type, is the additional data every key is
// sealed with.
const aadPrefix = "csctoken keystore/soft v1 "

// Backend is the software keystore. Create it with New.
type Backend struct {
	kek    *sealer.KEK
	cache  *lru.Cache[[sha256.Size]byte, *key]
	closed atomic.Bool

	mu      sync.Mutex
	deleted map[[sha256.Size]byte]struct{} // guarded by mu
}

// key is an unsealed private key and its type.
type key struct {
	kt     keystore.KeyType
	signer crypto.Signer // *rsa.PrivateKey (precomputed) or *ecdsa.PrivateKey
}

// Option configures New.
type Option func(*Backend)

// WithCacheSize sets how many unsealed keys are cached (default
// DefaultCacheSize; values below 1 mean 1).
func WithCacheSize(n int) Option {
	return func(b *Backend) { b.cache = lru.New[[sha256.Size]byte, *key](n) }
}

var _ keystore.Backend = (*Backend)(nil)

// New returns a software keystore whose keys are sealed under kek.
func New(kek *sealer.KEK, opts ...Option) *Backend {
	if kek == nil {
		panic("soft.New: nil KEK")
	}
	b := &Backend{
		kek:     kek,
		cache:   lru.New[[sha256.Size]byte, *key](DefaultCacheSize),
		deleted: make(map[[sha256.Size]byte]struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Name returns "soft".
func (b *Backend) Name() string { return "soft" }

// Generate creates a key of type kt and returns it sealed as ref. label is
// not stored.
func (b *Backend) Generate(ctx context.Context, kt keystore.KeyType, label string) ([]byte, crypto.PublicKey, error) {
	if b.closed.Load() {
		return nil, nil, keystore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var signer crypto.Signer
	var err error
	switch kt {
	case keystore.RSA2048:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case keystore.RSA3072:
		signer, err = rsa.GenerateKey(rand.Reader, 3072)
	case keystore.ECP256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case keystore.ECP384:
		signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("soft: %w: %q", keystore.ErrUnsupportedKey, kt)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("soft: generate %s: %w", kt, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, nil, fmt.Errorf("soft: encode %s key: %w", kt, err)
	}
	defer clear(der)

	ref := make([]byte, 0, 2+len(kt)+len(der)+sealer.Overhead)
	ref = append(ref, refVersion, byte(len(kt)))
	ref = append(ref, kt...)
	ref = append(ref, b.kek.Seal(der, []byte(aadPrefix+kt))...)

	b.cache.Add(sha256.Sum256(ref), &key{kt: kt, signer: signer})
	return ref, signer.Public(), nil
}

// Sign signs digest with the key sealed in ref. A ref that does not open
// under this Backend's KEK, or that was deleted, gives an error wrapping
// keystore.ErrKeyNotFound.
func (b *Backend) Sign(ctx context.Context, ref []byte, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if b.closed.Load() {
		return nil, keystore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hash, pss, err := keystore.CheckDigest(digest, opts)
	if err != nil {
		return nil, fmt.Errorf("soft: %w", err)
	}
	k, err := b.key(ref)
	if err != nil {
		return nil, err
	}
	switch priv := k.signer.(type) {
	case *rsa.PrivateKey:
		var sig []byte
		if pss != nil {
			sig, err = rsa.SignPSS(rand.Reader, priv, hash, digest, pss)
		} else {
			sig, err = rsa.SignPKCS1v15(nil, priv, hash, digest)
		}
		if err != nil {
			return nil, fmt.Errorf("soft: sign: %w: %w", keystore.ErrInvalidDigest, err)
		}
		return sig, nil
	case *ecdsa.PrivateKey:
		if pss != nil {
			return nil, fmt.Errorf("soft: %w: RSASSA-PSS requested for a %s key", keystore.ErrInvalidDigest, k.kt)
		}
		sig, err := ecdsa.SignASN1(rand.Reader, priv, digest)
		if err != nil {
			return nil, fmt.Errorf("soft: sign: %w", err)
		}
		return sig, nil
	default:
		return nil, fmt.Errorf("soft: unexpected key type %T", k.signer) // unreachable: unseal checks
	}
}

// Delete forgets the key: it leaves the cache and Sign refuses ref from now
// on, for the life of b. The caller must also destroy its stored copy of
// ref, which is the only place the key lives.
func (b *Backend) Delete(ctx context.Context, ref []byte) error {
	if b.closed.Load() {
		return keystore.ErrClosed
	}
	id := sha256.Sum256(ref)
	b.mu.Lock()
	b.deleted[id] = struct{}{}
	b.mu.Unlock()
	b.cache.Remove(id)
	return nil
}

// Close drops every cached key. Later calls fail with keystore.ErrClosed.
// It is safe to call more than once.
func (b *Backend) Close() error {
	b.closed.Store(true)
	b.cache.Purge()
	return nil
}

// key returns the unsealed key for ref, from the cache or by opening ref.
func (b *Backend) key(ref []byte) (*key, error) {
	id := sha256.Sum256(ref)
	b.mu.Lock()
	_, gone := b.deleted[id]
	b.mu.Unlock()
	if gone {
		return nil, fmt.Errorf("soft: %w: the key was deleted", keystore.ErrKeyNotFound)
	}
	if k, ok := b.cache.Get(id); ok {
		return k, nil
	}
	k, err := b.unseal(ref)
	if err != nil {
		return nil, fmt.Errorf("soft: %w: %w", keystore.ErrKeyNotFound, err)
	}
	b.cache.Add(id, k)
	return k, nil
}

// unseal opens and parses ref, checking that the key matches the type it
// was sealed under.
func (b *Backend) unseal(ref []byte) (*key, error) {
	if len(ref) < 2 || ref[0] != refVersion || len(ref) < 2+int(ref[1]) {
		return nil, errors.New("malformed reference")
	}
	kt := keystore.KeyType(ref[2 : 2+int(ref[1])])
	if _, err := keystore.ParseKeyType(string(kt)); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	der, err := b.kek.Open(ref[2+len(kt):], []byte(aadPrefix+kt))
	if err != nil {
		return nil, err
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der) // validates and precomputes RSA keys
	if err != nil {
		return nil, fmt.Errorf("sealed key: %w", err)
	}
	ok := false
	switch priv := parsed.(type) {
	case *rsa.PrivateKey:
		bits := priv.N.BitLen()
		ok = kt == keystore.RSA2048 && bits == 2048 || kt == keystore.RSA3072 && bits == 3072
	case *ecdsa.PrivateKey:
		ok = kt == keystore.ECP256 && priv.Curve == elliptic.P256() || kt == keystore.ECP384 && priv.Curve == elliptic.P384()
	}
	if !ok {
		return nil, fmt.Errorf("sealed key is a %T, not a %s key", parsed, kt)
	}
	return &key{kt: kt, signer: parsed.(crypto.Signer)}, nil
}
