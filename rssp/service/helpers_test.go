package service_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/service/servicetest"
)

const (
	password = "correct horse battery"
	pin      = "123456"
)

// fixture is a service with alice and bob logged in.
type fixture struct {
	*servicetest.Env
	alice, bob service.Principal
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{Env: servicetest.New(t, nil)}
	f.AddUser(t, "alice", password)
	f.AddUser(t, "bob", password)
	f.alice = f.login(t, "alice")
	f.bob = f.login(t, "bob")
	return f
}

func (f *fixture) login(t *testing.T, name string) service.Principal {
	t.Helper()
	tok, err := f.Service.Login(t.Context(), name, password, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Service.Authenticate(t.Context(), tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// credential enrols an ECDSA P-256 credential of alice with a PIN; edit
// changes the spec first.
func (f *fixture) credential(t *testing.T, edit func(*service.CredentialSpec)) (id, otpURI string) {
	t.Helper()
	spec := service.CredentialSpec{User: "alice", KeyType: keystore.ECP256, PIN: pin, Multisign: 3}
	if edit != nil {
		edit(&spec)
	}
	c, uri := f.AddCredential(t, spec)
	return c.ID, uri
}

// authorize asks for a SAD with the PIN.
func (f *fixture) authorize(t *testing.T, p service.Principal, credID string, n int, hashes ...[]byte) (service.SAD, error) {
	t.Helper()
	r := service.AuthorizeRequest{CredentialID: credID, NumSignatures: n, Hashes: hashes,
		AuthData: []csc.AuthData{{ID: service.FactorPIN, Value: pin}}}
	if len(hashes) > 0 {
		r.HashAlgorithm = csc.OIDSHA256
	}
	return f.Service.Authorize(t.Context(), p, r)
}

func (f *fixture) mustAuthorize(t *testing.T, credID string, n int, hashes ...[]byte) string {
	t.Helper()
	sad, err := f.authorize(t, f.alice, credID, n, hashes...)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	return sad.Value
}

// sign signs hashes with the SAD as alice.
func (f *fixture) sign(ctx context.Context, p service.Principal, credID, sad string, hashes ...[]byte) ([][]byte, error) {
	return f.Service.SignHash(ctx, p, service.SignRequest{CredentialID: credID, SAD: sad, Hashes: hashes,
		HashAlgorithm: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256})
}

func digest(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// totpAt is the code of a TOTP credential's otpauth:// URI at t.
func totpAt(t *testing.T, uri string, at time.Time) string {
	t.Helper()
	k, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCodeCustom(k.Secret(), at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// wantKind fails unless err matches kind (nil: no error).
func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	switch {
	case kind == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case kind != nil && !errors.Is(err, kind):
		t.Fatalf("error %v, want kind %v", err, kind)
	}
}

func digest384(s string) []byte {
	h := sha512.Sum384([]byte(s))
	return h[:]
}

// sadHash is how the store keys a SAD value.
func sadHash(v string) []byte { return secret.TokenHash(v) }
