package soft

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/keystore/keystoretest"
	"github.com/csctoken/csctoken/rssp/sealer"
)

func TestConformance(t *testing.T) {
	kek := sealer.GenerateKEK()
	keystoretest.Run(t, func(t *testing.T) keystore.Backend { return New(kek) })
}

func BenchmarkSoft(b *testing.B) {
	keystoretest.Bench(b, func(b *testing.B) keystore.Backend { return New(sealer.GenerateKEK()) })
}

// The private key must not appear in clear in the reference.
func TestRefIsSealed(t *testing.T) {
	kek := sealer.GenerateKEK()
	b := New(kek)
	defer b.Close()
	ctx := t.Context()
	for _, kt := range []keystore.KeyType{keystore.RSA2048, keystore.ECP256} {
		ref, _, err := b.Generate(ctx, kt, "x")
		if err != nil {
			t.Fatal(err)
		}
		k, err := b.unseal(ref)
		if err != nil {
			t.Fatal(err)
		}
		var secret []byte
		switch p := k.signer.(type) {
		case *rsa.PrivateKey:
			secret = p.D.Bytes()
		case *ecdsa.PrivateKey:
			b, _ := p.Bytes()
			secret = b
		}
		if bytes.Contains(ref, secret[:16]) {
			t.Errorf("%s: ref contains private key material", kt)
		}
	}
}

// A ref only opens under the KEK and key type it was sealed with, and a
// fresh backend (empty cache) can use a ref from another with the same KEK.
func TestRefBinding(t *testing.T) {
	ctx := t.Context()
	kek := sealer.GenerateKEK()
	b := New(kek)
	defer b.Close()
	ref, _, err := b.Generate(ctx, keystore.ECP256, "x")
	if err != nil {
		t.Fatal(err)
	}
	relabel := bytes.Clone(ref)
	copy(relabel[2:], "ec-p384") // same length as "ec-p256"

	tests := []struct {
		name    string
		backend *Backend
		ref     []byte
		wantErr error
	}{
		{"ok same KEK, cold cache", New(kek), ref, nil},
		{"fail other KEK", New(sealer.GenerateKEK()), ref, keystore.ErrKeyNotFound},
		{"fail key type swapped", New(kek), relabel, keystore.ErrKeyNotFound},
		{"fail truncated", New(kek), ref[:1], keystore.ErrKeyNotFound},
		{"fail bad version", New(kek), append([]byte{9}, ref[1:]...), keystore.ErrKeyNotFound},
		{"fail empty", New(kek), nil, keystore.ErrKeyNotFound},
	}
	digest := sha256.Sum256([]byte("doc"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer tt.backend.Close()
			_, err := tt.backend.Sign(ctx, tt.ref, digest[:], crypto.SHA256)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// Signing works with more keys than the cache holds, and the cache stays
// bounded.
func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	b := New(sealer.GenerateKEK(), WithCacheSize(2))
	defer b.Close()
	var refs [][]byte
	for range 4 {
		ref, _, err := b.Generate(ctx, keystore.ECP256, "x")
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	digest := sha256.Sum256([]byte("doc"))
	for round := range 2 {
		for i, ref := range refs {
			if _, err := b.Sign(ctx, ref, digest[:], crypto.SHA256); err != nil {
				t.Fatalf("round %d key %d: %v", round, i, err)
			}
		}
	}
	if n := b.cache.Len(); n != 2 {
		t.Fatalf("cache holds %d keys, want 2", n)
	}
}
