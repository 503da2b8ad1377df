//go:build csctoken_fake

// This file makes libcsctoken-fake.so (go build -tags csctoken_fake), the
// test build: every slot is served by an in-process fakeservice.Fake
// instead of a CSC client, so C hosts (pkcs11-tool, the C drivers of the
// tests) get a working token without a network. It is never shipped.
//
// Environment:
//
//	CSCTOKEN_FAKE_PIN         the credential PIN (default 123456)
//	CSCTOKEN_FAKE_KEYS        the credentials, comma-separated, from rsa2048,
//	                          rsa3072, p256, p384 (default "rsa2048,p256");
//	                          the ID and label are the name ("Key rsa2048")
//	CSCTOKEN_FAKE_KEYDIR      where keys and certificates are kept, so that
//	                          every process sees the same ones (default
//	                          $XDG_CACHE_HOME/csctoken-fake)
//	CSCTOKEN_FAKE_SIGN_DELAY  a duration each signHash waits, honouring
//	                          cancellation (e.g. "30s"; default none)
//	CSCTOKEN_FAKE_SHA1        "1": RSA credentials also offer SHA-1 (as some
//	                          services do; pkcs11-tool --test signs SHA-1
//	                          DigestInfos with CKM_RSA_PKCS)
//	CSCTOKEN_CONFIG           when set, the config is loaded as usual and
//	                          each [[service]] gets its own fake; otherwise
//	                          there is one slot, "csctoken fake"
//
// RSA credentials are SCAL1 with multisign 5, EC ones SCAL1 with multisign 1,
// all PIN-protected.

package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/fakeservice"
)

var loadConfig = func() (*config.Config, error) {
	if os.Getenv(config.EnvConfig) != "" {
		return config.LoadDefault()
	}
	return &config.Config{Services: []config.Service{{
		Name:           "csctoken fake",
		URL:            "https://fake.csctoken.invalid/csc/v2",
		Auth:           config.AuthBasic,
		Username:       "fake",
		CredentialAuth: config.CredentialAuthPIN,
		Timeout:        config.DefaultTimeout,
		ListTimeout:    config.DefaultListTimeout,
	}}}, nil
}

// remoteOnCaller is as in the real library, so that C_Sign takes the
// same path.
const remoteOnCaller = cscclient.CallerIOSupported

var newService = func(svc config.Service, log *slog.Logger) (module.Service, error) {
	pin := os.Getenv("CSCTOKEN_FAKE_PIN")
	if pin == "" {
		pin = "123456"
	}
	f := fakeservice.New(pin)
	if d := os.Getenv("CSCTOKEN_FAKE_SIGN_DELAY"); d != "" {
		delay, err := time.ParseDuration(d)
		if err != nil {
			return nil, fmt.Errorf("CSCTOKEN_FAKE_SIGN_DELAY: %w", err)
		}
		f.Hook = func(ctx context.Context, method string) error {
			if method != fakeservice.MSignHash {
				return nil
			}
			select {
			case <-time.After(delay):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	kinds := os.Getenv("CSCTOKEN_FAKE_KEYS")
	if kinds == "" {
		kinds = "rsa2048,p256"
	}
	dir := os.Getenv("CSCTOKEN_FAKE_KEYDIR")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("fake key directory: %w", err)
		}
		dir = filepath.Join(base, "csctoken-fake")
	}
	keys, err := loadOrCreateKeys(dir, strings.Split(kinds, ","))
	if err != nil {
		return nil, err
	}
	sha1 := os.Getenv("CSCTOKEN_FAKE_SHA1") == "1"
	for _, k := range keys {
		// Add* make a key of their own (for RSA, a small one is quicker);
		// the persistent key and chain replace it.
		bits := 0
		switch pub := k.key.Public().(type) {
		case *rsa.PublicKey:
			bits = pub.N.BitLen()
			f.AddRSA(k.id, 1024, 1, 5, module.AuthPIN)
		case *ecdsa.PublicKey:
			bits = pub.Curve.Params().BitSize
			f.AddEC(k.id, pub.Curve, 1, 1, module.AuthPIN)
		}
		f.Set(func(creds []*fakeservice.Cred) {
			for _, c := range creds {
				if c.ID == k.id {
					c.Key, c.Certificates, c.KeyLen = k.key, k.chain, bits
					if _, isRSA := k.key.(*rsa.PrivateKey); isRSA && sha1 {
						c.KeyAlgos = append(c.KeyAlgos, oidSHA1WithRSA)
					}
				}
			}
		})
	}
	log.Info("fake service", "credentials", kinds, "keydir", dir)
	return f, nil
}

// afterInitialize lists the fakes' credentials right away, so a host sees
// the objects from its first search (the real module lists in the
// background, and shows the disk cache meanwhile).
var afterInitialize = func() {
	slots, err := mod.GetSlotList(true)
	if err != nil {
		return
	}
	for _, s := range slots {
		_ = mod.Refresh(context.Background(), s)
	}
}

// oidSHA1WithRSA is sha1WithRSAEncryption.
const oidSHA1WithRSA = "1.2.840.113549.1.1.5"

type fakeKey struct {
	id    string
	key   crypto.Signer
	chain [][]byte // end-entity, CA
}

// loadOrCreateKeys reads the keys named by kinds from dir, creating the
// missing ones, under an exclusive lock so that concurrent processes agree.
func loadOrCreateKeys(dir string, kinds []string) ([]fakeKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fake keys: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fake keys: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("fake keys: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	ca, err := loadOrCreate(filepath.Join(dir, "ca.pem"), func() (crypto.Signer, error) {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}, nil)
	if err != nil {
		return nil, err
	}
	var out []fakeKey
	for _, kind := range kinds {
		kind = strings.TrimSpace(kind)
		var gen func() (crypto.Signer, error)
		switch kind {
		case "rsa2048", "rsa3072":
			bits := map[string]int{"rsa2048": 2048, "rsa3072": 3072}[kind]
			gen = func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
		case "p256":
			gen = func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
		case "p384":
			gen = func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) }
		default:
			return nil, fmt.Errorf("CSCTOKEN_FAKE_KEYS: unknown key %q", kind)
		}
		k, err := loadOrCreate(filepath.Join(dir, kind+".pem"), gen, &ca)
		if err != nil {
			return nil, err
		}
		k.id = kind
		out = append(out, k)
	}
	return out, nil
}

// loadOrCreate reads a PEM file holding a PKCS#8 key and its chain, or
// makes one: self-signed CA when issuer is nil, else a user certificate.
func loadOrCreate(path string, gen func() (crypto.Signer, error), issuer *fakeKey) (fakeKey, error) {
	if k, err := readKeyFile(path); err == nil {
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fakeKey{}, err
	}
	key, err := gen()
	if err != nil {
		return fakeKey{}, fmt.Errorf("fake key: %w", err)
	}
	name := strings.TrimSuffix(filepath.Base(path), ".pem")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "csctoken fake " + name, Organization: []string{"csctoken tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	parent, signer := tmpl, key
	if issuer == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		parent, err = x509.ParseCertificate(issuer.chain[0])
		if err != nil {
			return fakeKey{}, fmt.Errorf("fake CA: %w", err)
		}
		signer = issuer.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return fakeKey{}, fmt.Errorf("fake certificate: %w", err)
	}
	k := fakeKey{key: key, chain: [][]byte{der}}
	if issuer != nil {
		k.chain = append(k.chain, issuer.chain[0])
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fakeKey{}, fmt.Errorf("fake key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})
	for _, c := range k.chain {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fakeKey{}, fmt.Errorf("fake key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fakeKey{}, fmt.Errorf("fake key: %w", err)
	}
	return k, nil
}

func readKeyFile(path string) (fakeKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fakeKey{}, err
	}
	var k fakeKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return fakeKey{}, fmt.Errorf("%s: %w", path, err)
			}
			s, ok := key.(crypto.Signer)
			if !ok {
				return fakeKey{}, fmt.Errorf("%s: not a signing key", path)
			}
			k.key = s
		case "CERTIFICATE":
			k.chain = append(k.chain, b.Bytes)
		}
	}
	if k.key == nil || len(k.chain) == 0 {
		return fakeKey{}, fmt.Errorf("%s: no key or certificate", path)
	}
	return k, nil
}
