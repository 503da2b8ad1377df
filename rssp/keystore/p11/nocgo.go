//go:build !cgo

package p11

import (
	"context"
	"crypto"

	"github.com/csctoken/csctoken/rssp/keystore"
)

// Backend is unavailable without cgo: Open always fails with ErrNoCgo.
type Backend struct{}

var _ keystore.Backend = (*Backend)(nil)

// Open fails: this binary was built without cgo.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, ErrNoCgo
}

// Name returns "pkcs11".
func (b *Backend) Name() string { return "pkcs11" }

// PoolSize returns 0.
func (b *Backend) PoolSize() int { return 0 }

// Generate fails with ErrNoCgo.
func (b *Backend) Generate(context.Context, keystore.KeyType, string) ([]byte, crypto.PublicKey, error) {
	return nil, nil, ErrNoCgo
}

// Sign fails with ErrNoCgo.
func (b *Backend) Sign(context.Context, []byte, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, ErrNoCgo
}

// Delete fails with ErrNoCgo.
func (b *Backend) Delete(context.Context, []byte) error { return ErrNoCgo }

// Close does nothing.
func (b *Backend) Close() error { return nil }

// Check fails: no PKCS#11 without cgo.
func (b *Backend) Check(context.Context) error { return ErrNoCgo }

// PoolStats is empty.
func (b *Backend) PoolStats() keystore.PoolStats { return keystore.PoolStats{} }
