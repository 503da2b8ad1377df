//go:build cgo

package p11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/softhsmtest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/keystore/keystoretest"
	"github.com/miekg/pkcs11"
)

func tokenConfig(tok *softhsmtest.Token) Config {
	return Config{Module: tok.ModulePath, TokenLabel: tok.Label, PIN: tok.PIN}
}

// openToken opens a Backend on tok and closes it when tb ends.
func openToken(tb testing.TB, tok *softhsmtest.Token) *Backend {
	tb.Helper()
	b, err := Open(context.Background(), tokenConfig(tok))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestConformance(t *testing.T) {
	tok := softhsmtest.New(t)
	keystoretest.Run(t, func(t *testing.T) keystore.Backend { return openToken(t, tok) })
}

func BenchmarkP11(b *testing.B) {
	tok := softhsmtest.New(b)
	keystoretest.Bench(b, func(b *testing.B) keystore.Backend { return openToken(b, tok) })
}

// The private keys really are sensitive and non-extractable, as seen by a
// separate session of a separate miekg context.
func TestKeyAttributes(t *testing.T) {
	tok := softhsmtest.New(t)
	b := openToken(t, tok)
	ctx := t.Context()

	c := pkcs11.New(tok.ModulePath)
	if c == nil {
		t.Fatal("pkcs11.New failed")
	}
	defer c.Destroy()
	switch err := c.Initialize(); {
	case err == nil:
		defer c.Finalize()
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
		// Expected: the Backend initialised the (shared) library.
	default:
		t.Fatal(err)
	}
	sh, err := c.OpenSession(b.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseSession(sh)

	for _, kt := range keystore.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			label := "attr-" + string(kt)
			ref, _, err := b.Generate(ctx, kt, label)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Delete(context.Background(), ref)

			objs, err := findObjects(c, sh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_ID, ref),
			}, 2)
			if err != nil || len(objs) != 1 {
				t.Fatalf("find private key: %d objects, %v", len(objs), err)
			}
			attrs, err := c.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_SENSITIVE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, nil),
				pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, nil),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
			})
			if err != nil {
				t.Fatal(err)
			}
			want := []struct {
				name string
				val  []byte
			}{
				{"CKA_EXTRACTABLE", []byte{0}},
				{"CKA_SENSITIVE", []byte{1}},
				{"CKA_NEVER_EXTRACTABLE", []byte{1}},
				{"CKA_ALWAYS_SENSITIVE", []byte{1}},
				{"CKA_TOKEN", []byte{1}},
				{"CKA_PRIVATE", []byte{1}},
				{"CKA_SIGN", []byte{1}},
				{"CKA_DECRYPT", []byte{0}},
				{"CKA_LABEL", []byte(label)},
			}
			for i, w := range want {
				if string(attrs[i].Value) != string(w.val) {
					t.Errorf("%s = %x, want %x", w.name, attrs[i].Value, w.val)
				}
			}

			// The secret parts cannot be read.
			secret := uint(pkcs11.CKA_PRIVATE_EXPONENT)
			if strings.HasPrefix(string(kt), "ec") {
				secret = pkcs11.CKA_VALUE
			}
			_, err = c.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(secret, nil)})
			if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
				t.Errorf("reading the private value: err = %v, want CKR_ATTRIBUTE_SENSITIVE", err)
			}
		})
	}
}

func TestPoolSize(t *testing.T) {
	tok := softhsmtest.New(t)
	b := openToken(t, tok)
	if n := b.PoolSize(); n < runtime.NumCPU() {
		t.Errorf("PoolSize() = %d, want at least NumCPU = %d", n, runtime.NumCPU())
	}
	if got := int(b.live.Load()); got != b.PoolSize() || len(b.pool) != b.PoolSize() {
		t.Errorf("live = %d, idle = %d, want %d", got, len(b.pool), b.PoolSize())
	}
}

func TestOpenErrors(t *testing.T) {
	tok := softhsmtest.New(t)
	notALib := filepath.Join(t.TempDir(), "libnot.so")
	if err := os.WriteFile(notALib, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		mutate   func(*Config)
		wantIs   error
		wantCKR  pkcs11.Error // 0: not checked
		wantText string
	}{
		{"fail wrong label", func(c *Config) { c.TokenLabel = "no-such-token" }, ErrTokenNotFound, 0, `no initialised token labelled "no-such-token"`},
		{"fail wrong PIN", func(c *Config) { c.PIN = "000000" }, nil, pkcs11.CKR_PIN_INCORRECT, "wrong PIN"},
		{"fail missing module", func(c *Config) { c.Module = "/nonexistent/libnothing.so" }, nil, 0, "no such file"},
		{"fail not a PKCS#11 library", func(c *Config) { c.Module = notALib }, nil, 0, "cannot load PKCS#11 module"},
		{"fail empty PIN", func(c *Config) { c.PIN = "" }, nil, 0, "PIN is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tokenConfig(tok)
			tt.mutate(&cfg)
			b, err := Open(context.Background(), cfg)
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			if tt.wantCKR != 0 {
				var ck pkcs11.Error
				if !errors.As(err, &ck) || ck != tt.wantCKR {
					t.Errorf("err = %v, want it to wrap %v", err, tt.wantCKR)
				}
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantText)
			}
			if strings.Contains(err.Error(), tok.PIN) {
				t.Errorf("error leaks the PIN: %v", err)
			}
		})
	}
	// After all those failures, the library is usable again (each failure
	// undid its C_Initialize).
	modules.mu.Lock()
	n := len(modules.m)
	modules.mu.Unlock()
	if n != 0 {
		t.Errorf("%d modules still loaded after failed Opens", n)
	}
	openToken(t, tok)
}

func TestCloseTwice(t *testing.T) {
	tok := softhsmtest.New(t)
	b, err := Open(context.Background(), tokenConfig(tok))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := b.Generate(context.Background(), keystore.ECP256, "x"); !errors.Is(err, keystore.ErrClosed) {
		t.Fatalf("Generate after Close: %v", err)
	}
}

// Two Backends on one module share one C_Initialize; closing one leaves the
// other working, keys generated by one are usable by the other, and a key
// deleted by one is gone for the other despite its cached handle.
func TestTwoBackendsShareModule(t *testing.T) {
	tok := softhsmtest.New(t)
	ctx := t.Context()
	b1 := openToken(t, tok)
	b2, err := Open(ctx, tokenConfig(tok))
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := b1.Generate(ctx, keystore.ECP256, "shared")
	if err != nil {
		t.Fatal(err)
	}
	digest := make([]byte, 32)
	if _, err := b2.Sign(ctx, ref, digest, crypto.SHA256); err != nil {
		t.Fatalf("b2 signs with b1's key: %v", err)
	}
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b1.Sign(ctx, ref, digest, crypto.SHA256); err != nil {
		t.Fatalf("b1 after b2 closed: %v", err)
	}

	// A key deleted through another Backend: b1's cached handle is stale.
	b3 := openToken(t, tok)
	if err := b3.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, ok := b1.handles.Get(string(ref)); !ok {
		t.Fatal("b1 has no cached handle to go stale")
	}
	if _, err := b1.Sign(ctx, ref, digest, crypto.SHA256); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("b1 signs with a key deleted by b3: err = %v, want ErrKeyNotFound", err)
	}
}

// SoftHSM2 whose token directory is moved away under signing load, then
// back: signatures fail with keystore.ErrUnavailable (never another
// error, never a hang), Check fails, and once the directory is back the
// same Backend signs again, without a new Open: it re-initialised the
// library (SoftHSM2 reads its token store only in C_Initialize).
func TestTokenDirAwayAndBack(t *testing.T) {
	tok := softhsmtest.New(t)
	cfg := tokenConfig(tok)
	cfg.ReopenMinWait, cfg.ReopenMaxWait, cfg.CheckTTL = 20*time.Millisecond, 200*time.Millisecond, time.Nanosecond
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	ctx := t.Context()
	refs := map[keystore.KeyType][]byte{}
	pubs := map[keystore.KeyType]crypto.PublicKey{}
	for _, kt := range []keystore.KeyType{keystore.RSA2048, keystore.ECP256} {
		refs[kt], pubs[kt], err = b.Generate(ctx, kt, "away-"+string(kt))
		if err != nil {
			t.Fatal(err)
		}
	}
	signVerify := func(kt keystore.KeyType) error {
		d := sha256.Sum256([]byte(kt))
		sig, err := b.Sign(ctx, refs[kt], d[:], crypto.SHA256)
		if err != nil {
			return err
		}
		switch pub := pubs[kt].(type) {
		case *rsa.PublicKey:
			return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
		case *ecdsa.PublicKey:
			if !ecdsa.VerifyASN1(pub, d[:], sig) {
				return errors.New("ECDSA signature does not verify")
			}
		}
		return nil
	}

	// Load: 4 goroutines signing until stop; each error must be
	// ErrUnavailable.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, unavailable int
	var other []error
	for g := range 4 {
		wg.Go(func() {
			kt := []keystore.KeyType{keystore.RSA2048, keystore.ECP256}[g%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := signVerify(kt)
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, keystore.ErrUnavailable):
					unavailable++
				default:
					other = append(other, err)
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	away := tok.TokenDir + ".away"
	if err := os.Rename(tok.TokenDir, away); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	err = signVerify(keystore.ECP256)
	if !errors.Is(err, keystore.ErrUnavailable) {
		t.Errorf("Sign with the token away: %v, want ErrUnavailable", err)
	}
	if err := b.Check(ctx); !errors.Is(err, keystore.ErrUnavailable) {
		t.Errorf("Check with the token away: %v, want ErrUnavailable", err)
	}
	if err := os.Rename(away, tok.TokenDir); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for b.Available() != nil {
		if time.Since(back) > 10*time.Second {
			t.Fatalf("not back 10s after the token directory returned: %v", b.Available())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("signing again %v after the token directory returned", time.Since(back).Round(time.Millisecond))
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("under load: %d signatures, %d unavailable, %d other errors", ok, unavailable, len(other))
	for _, err := range other {
		t.Errorf("error other than unavailable: %v", err)
	}
	if unavailable == 0 {
		t.Error("no signature failed: the token did not go away")
	}
	for kt := range refs {
		if err := signVerify(kt); err != nil {
			t.Errorf("%s once back: %v", kt, err)
		}
	}
	if err := b.Check(ctx); err != nil {
		t.Errorf("Check once back: %v", err)
	}
}

// TestOpenFindsTokenAgain: a token the library does not list when Open
// starts (SoftHSM2 lists none while another process rewrites the token's
// file; an HSM still coming up) is found when it appears within Open's
// retries, with the library initialised anew.
func TestOpenFindsTokenAgain(t *testing.T) {
	tok := softhsmtest.New(t)
	entries, err := os.ReadDir(tok.TokenDir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("token dir: %v, %d entries", err, len(entries))
	}
	inDir := filepath.Join(tok.TokenDir, entries[0].Name())
	away := filepath.Join(t.TempDir(), entries[0].Name())
	if err := os.Rename(inDir, away); err != nil {
		t.Fatal(err)
	}
	back := time.AfterFunc(300*time.Millisecond, func() {
		if err := os.Rename(away, inDir); err != nil {
			t.Error(err)
		}
	})
	defer back.Stop()
	start := time.Now()
	b, err := Open(context.Background(), tokenConfig(tok))
	if err != nil {
		t.Fatalf("Open with the token back after 300 ms: %v", err)
	}
	t.Logf("found after %v", time.Since(start).Round(time.Millisecond))
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
