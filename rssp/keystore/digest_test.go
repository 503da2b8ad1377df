package keystore

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"testing"
)

func TestCheckDigest(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		opts     crypto.SignerOpts
		wantHash crypto.Hash
		wantPSS  bool
		wantErr  bool
	}{
		{"ok SHA-256", 32, crypto.SHA256, crypto.SHA256, false, false},
		{"ok SHA-384", 48, crypto.SHA384, crypto.SHA384, false, false},
		{"ok SHA-512", 64, crypto.SHA512, crypto.SHA512, false, false},
		{"ok SHA-224", 28, crypto.SHA224, crypto.SHA224, false, false},
		{"ok SHA-1", 20, crypto.SHA1, crypto.SHA1, false, false},
		{"ok PSS equals hash", 32, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, crypto.SHA256, true, false},
		{"ok PSS auto", 48, &rsa.PSSOptions{Hash: crypto.SHA384}, crypto.SHA384, true, false},
		{"ok PSS explicit", 64, &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA512}, crypto.SHA512, true, false},
		{"fail short", 31, crypto.SHA256, 0, false, true},
		{"fail long", 33, crypto.SHA256, 0, false, true},
		{"fail wrong hash for length", 32, crypto.SHA384, 0, false, true},
		{"fail nil opts", 32, nil, 0, false, true},
		{"fail zero hash", 32, crypto.Hash(0), 0, false, true},
		{"fail MD5", 16, crypto.MD5, 0, false, true},
		{"fail SHA3", 32, crypto.SHA3_256, 0, false, true},
		{"fail PSS bad salt", 32, &rsa.PSSOptions{SaltLength: -2, Hash: crypto.SHA256}, 0, false, true},
		{"fail PSS no hash", 32, &rsa.PSSOptions{}, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, pss, err := CheckDigest(make([]byte, tt.n), tt.opts)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidDigest) {
					t.Fatalf("err = %v, want ErrInvalidDigest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h != tt.wantHash || (pss != nil) != tt.wantPSS {
				t.Fatalf("CheckDigest = %v, %v; want %v, PSS %v", h, pss, tt.wantHash, tt.wantPSS)
			}
		})
	}
}
