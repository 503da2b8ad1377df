// Package keystoretest is the conformance suite for keystore.Backend
// implementations, and a common benchmark.
//
// A backend's test calls Run with a constructor; every behaviour the RSSP
// relies on is checked against the Go standard library's verifiers:
//
//	func TestConformance(t *testing.T) {
//		keystoretest.Run(t, func(t *testing.T) keystore.Backend {
//			return soft.New(sealer.GenerateKEK())
//		})
//	}
//
// Run and Bench close every backend they obtain from newBackend (Close must
// be idempotent, so a constructor may also register its own Close). The
// suite does not call t.Parallel, so constructors may use t.Setenv.
package keystoretest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // for crypto.Hash.New
	_ "crypto/sha512"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/csctoken/csctoken/rssp/keystore"
)

// Hashes are the digests every key is exercised with.
var Hashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

// Run runs the conformance suite against backends made by newBackend.
func Run(t *testing.T, newBackend func(t *testing.T) keystore.Backend) {
	ctx := t.Context()
	b := newBackend(t)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	t.Run("Name", func(t *testing.T) {
		if b.Name() == "" {
			t.Error("Name() is empty")
		}
	})

	t.Run("GenerateUnsupported", func(t *testing.T) {
		for _, kt := range []keystore.KeyType{"rsa-1024", "ec-p521", "ed25519", ""} {
			if _, _, err := b.Generate(ctx, kt, "unsupported"); !errors.Is(err, keystore.ErrUnsupportedKey) {
				t.Errorf("Generate(%q): err = %v, want ErrUnsupportedKey", kt, err)
			}
		}
	})

	keys := make(map[keystore.KeyType]testKey)
	parent := t
	for _, kt := range keystore.KeyTypes {
		ok := t.Run("Generate/"+string(kt), func(t *testing.T) {
			ref, pub, err := b.Generate(ctx, kt, "conformance-"+string(kt))
			if err != nil {
				t.Fatalf("Generate(%s): %v", kt, err)
			}
			if len(ref) == 0 {
				t.Fatal("empty ref")
			}
			if err := checkPublic(kt, pub); err != nil {
				t.Fatal(err)
			}
			keys[kt] = testKey{kt, ref, pub}
			parent.Cleanup(func() { _ = b.Delete(context.Background(), ref) }) // after all subtests, before Close
		})
		if !ok {
			t.FailNow()
		}
	}
	seen := make(map[string]bool)
	for _, k := range keys {
		if seen[string(k.ref)] {
			t.Fatal("two keys share a ref")
		}
		seen[string(k.ref)] = true
	}

	t.Run("Sign", func(t *testing.T) {
		for _, kt := range keystore.KeyTypes {
			k := keys[kt]
			for _, h := range Hashes {
				for _, s := range schemesFor(kt, h) {
					t.Run(fmt.Sprintf("%s/%s/%v", kt, s.name, h), func(t *testing.T) {
						digest := randomDigest(h)
						sig, err := b.Sign(ctx, k.ref, digest, s.opts)
						if err != nil {
							t.Fatalf("Sign: %v", err)
						}
						if err := verify(k.pub, digest, sig, s.verify); err != nil {
							t.Fatal(err)
						}
					})
				}
			}
		}
	})

	t.Run("WrongDigestLength", func(t *testing.T) {
		for _, kt := range keystore.KeyTypes {
			k := keys[kt]
			for _, s := range schemesFor(kt, crypto.SHA256) {
				for _, n := range []int{0, 20, 31, 33, 48, 64} {
					_, err := b.Sign(ctx, k.ref, make([]byte, n), s.opts)
					if !errors.Is(err, keystore.ErrInvalidDigest) {
						t.Errorf("%s %s SHA-256 with a %d-byte digest: err = %v, want ErrInvalidDigest", kt, s.name, n, err)
					}
				}
			}
		}
	})

	t.Run("BadOptions", func(t *testing.T) {
		k := keys[keystore.RSA2048]
		tests := []struct {
			name string
			opts crypto.SignerOpts
			n    int
		}{
			{"nil opts", nil, 32},
			{"no hash", crypto.Hash(0), 32},
			{"MD5", crypto.MD5, 16},
			{"PSS without hash", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}, 32},
			{"PSS negative salt", &rsa.PSSOptions{SaltLength: -7, Hash: crypto.SHA256}, 32},
		}
		for _, tt := range tests {
			if _, err := b.Sign(ctx, k.ref, make([]byte, tt.n), tt.opts); !errors.Is(err, keystore.ErrInvalidDigest) {
				t.Errorf("%s: err = %v, want ErrInvalidDigest", tt.name, err)
			}
		}
	})

	t.Run("PSSOnEC", func(t *testing.T) {
		for _, kt := range []keystore.KeyType{keystore.ECP256, keystore.ECP384} {
			opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
			if _, err := b.Sign(ctx, keys[kt].ref, randomDigest(crypto.SHA256), opts); !errors.Is(err, keystore.ErrInvalidDigest) {
				t.Errorf("PSS with %s: err = %v, want ErrInvalidDigest", kt, err)
			}
		}
	})

	t.Run("UnknownRef", func(t *testing.T) {
		flipped := bytes.Clone(keys[keystore.ECP256].ref)
		flipped[len(flipped)-1] ^= 1
		refs := map[string][]byte{
			"random 16 bytes": randomBytes(16),
			"random 200":      randomBytes(200),
			"one bit off":     flipped,
		}
		for name, ref := range refs {
			if _, err := b.Sign(ctx, ref, randomDigest(crypto.SHA256), crypto.SHA256); !errors.Is(err, keystore.ErrKeyNotFound) {
				t.Errorf("%s: err = %v, want ErrKeyNotFound", name, err)
			}
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.Sign(cctx, keys[keystore.ECP256].ref, randomDigest(crypto.SHA256), crypto.SHA256); !errors.Is(err, context.Canceled) {
			t.Errorf("Sign with a cancelled context: err = %v, want context.Canceled", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		const goroutines, perGoroutine = 32, 4
		type job struct {
			k testKey
			s scheme
		}
		var jobs []job
		for _, kt := range []keystore.KeyType{keystore.RSA2048, keystore.ECP256, keystore.ECP384} {
			for _, s := range schemesFor(kt, crypto.SHA256) {
				jobs = append(jobs, job{keys[kt], s})
			}
		}
		errs := make(chan error, goroutines*perGoroutine)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range perGoroutine {
					j := jobs[(g+i)%len(jobs)]
					digest := randomDigest(crypto.SHA256)
					sig, err := b.Sign(ctx, j.k.ref, digest, j.s.opts)
					if err == nil {
						err = verify(j.k.pub, digest, sig, j.s.verify)
					}
					if err != nil {
						errs <- fmt.Errorf("goroutine %d, %s %s: %w", g, j.k.kt, j.s.name, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		ref, pub, err := b.Generate(ctx, keystore.ECP256, "conformance-delete")
		if err != nil {
			t.Fatal(err)
		}
		digest := randomDigest(crypto.SHA256)
		sig, err := b.Sign(ctx, ref, digest, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(pub, digest, sig, crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, ref); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := b.Sign(ctx, ref, digest, crypto.SHA256); !errors.Is(err, keystore.ErrKeyNotFound) {
			t.Errorf("Sign after Delete: err = %v, want ErrKeyNotFound", err)
		}
		if err := b.Delete(ctx, ref); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		if err := b.Delete(ctx, randomBytes(16)); err != nil {
			t.Errorf("Delete of an unknown ref: %v", err)
		}
		// The other keys are untouched.
		k := keys[keystore.ECP256]
		if _, err := b.Sign(ctx, k.ref, digest, crypto.SHA256); err != nil {
			t.Errorf("Sign with another key after Delete: %v", err)
		}
	})

	t.Run("Close", func(t *testing.T) {
		b2 := newBackend(t)
		ref, _, err := b2.Generate(ctx, keystore.ECP256, "conformance-close")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Delete(context.Background(), ref) }) // same store for token backends
		if err := b2.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := b2.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := b2.Sign(ctx, ref, randomDigest(crypto.SHA256), crypto.SHA256); !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("Sign after Close: err = %v, want ErrClosed", err)
		}
		if _, _, err := b2.Generate(ctx, keystore.ECP256, "x"); !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("Generate after Close: err = %v, want ErrClosed", err)
		}
	})
}

// Bench measures Sign with SHA-256 digests from b.RunParallel goroutines
// (GOMAXPROCS of them, so -cpu sets the parallelism), on an RSA 2048 key
// (PKCS#1 v1.5) and a P-256 key (ECDSA).
func Bench(b *testing.B, newBackend func(b *testing.B) keystore.Backend) {
	ctx := b.Context()
	be := newBackend(b)
	b.Cleanup(func() { _ = be.Close() })
	for _, c := range []struct {
		name string
		kt   keystore.KeyType
	}{{"RSA2048", keystore.RSA2048}, {"P256", keystore.ECP256}} {
		ref, pub, err := be.Generate(ctx, c.kt, "bench-"+string(c.kt))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = be.Delete(context.Background(), ref) })
		digest := randomDigest(crypto.SHA256)
		sig, err := be.Sign(ctx, ref, digest, crypto.SHA256)
		if err == nil {
			err = verify(pub, digest, sig, crypto.SHA256)
		}
		if err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := be.Sign(ctx, ref, digest, crypto.SHA256); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

type testKey struct {
	kt  keystore.KeyType
	ref []byte
	pub crypto.PublicKey
}

// scheme is one way of signing: the options given to Sign and those the
// verifier checks against (PSS verification pins the salt length).
type scheme struct {
	name   string
	opts   crypto.SignerOpts
	verify crypto.SignerOpts
}

func schemesFor(kt keystore.KeyType, h crypto.Hash) []scheme {
	switch kt {
	case keystore.RSA2048, keystore.RSA3072:
		pinned := &rsa.PSSOptions{SaltLength: h.Size(), Hash: h}
		return []scheme{
			{"PKCS1v15", h, h},
			{"PSS-EqualsHash", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}, pinned},
			{"PSS-Explicit", &rsa.PSSOptions{SaltLength: h.Size(), Hash: h}, pinned},
			{"PSS-Auto", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: h}, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: h}},
		}
	default:
		return []scheme{{"ECDSA", h, h}}
	}
}

func checkPublic(kt keystore.KeyType, pub crypto.PublicKey) error {
	switch kt {
	case keystore.RSA2048, keystore.RSA3072:
		want := map[keystore.KeyType]int{keystore.RSA2048: 2048, keystore.RSA3072: 3072}[kt]
		p, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s: public key is %T, want *rsa.PublicKey", kt, pub)
		}
		if p.N.BitLen() != want {
			return fmt.Errorf("%s: modulus has %d bits", kt, p.N.BitLen())
		}
		if p.E != 65537 {
			return fmt.Errorf("%s: public exponent %d, want 65537", kt, p.E)
		}
	case keystore.ECP256, keystore.ECP384:
		want := map[keystore.KeyType]elliptic.Curve{keystore.ECP256: elliptic.P256(), keystore.ECP384: elliptic.P384()}[kt]
		p, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s: public key is %T, want *ecdsa.PublicKey", kt, pub)
		}
		if p.Curve != want {
			return fmt.Errorf("%s: curve %s", kt, p.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("unknown key type %s", kt)
	}
	return nil
}

// verify checks sig with the standard library.
func verify(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if len(sig) != p.Size() {
			return fmt.Errorf("RSA signature is %d bytes, want %d", len(sig), p.Size())
		}
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			if err := rsa.VerifyPSS(p, pss.Hash, digest, sig, pss); err != nil {
				return fmt.Errorf("RSASSA-PSS verification (salt %d): %w", pss.SaltLength, err)
			}
			return nil
		}
		if err := rsa.VerifyPKCS1v15(p, opts.HashFunc(), digest, sig); err != nil {
			return fmt.Errorf("RSA PKCS#1 v1.5 verification: %w", err)
		}
		return nil
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return fmt.Errorf("ECDSA verification failed (signature %x)", sig)
		}
		return nil
	default:
		return fmt.Errorf("unexpected public key %T", pub)
	}
}

func randomDigest(h crypto.Hash) []byte {
	hh := h.New()
	hh.Write(randomBytes(64))
	return hh.Sum(nil)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
