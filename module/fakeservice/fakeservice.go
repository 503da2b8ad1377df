// Package fakeservice is an in-process module.Service for tests: it holds
// real Go keys (RSA and EC) under a built-in CA, so signatures verify; it
// counts calls, keeps SADs with their counts, expiry and hash binding, and
// can be told to fail or block through Hook.
package fakeservice

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/csctoken/csctoken/module"
)

// Methods, as passed to Hook and used as Calls keys.
const (
	MList      = "ListCredentials"
	MLogin     = "Login"
	MAuthorize = "Authorize"
	MBrowser   = "AuthorizeInBrowser"
	MSignHash  = "SignHash"
)

// Cred is a credential with its private key.
type Cred struct {
	module.Credential
	Key crypto.Signer
}

type sadState struct {
	cred      string
	remaining int
	hashes    [][]byte
	expires   time.Time
}

// Fake is the fake service. Its exported fields may be changed between
// calls under no lock only while no call runs; use Set for races.
type Fake struct {
	mu sync.Mutex
	// PIN is the PIN of every AuthPIN credential.
	pin         string
	maxAttempts int
	attempts    map[string]int // remaining per credential
	locked      map[string]bool
	creds       []*Cred
	sads        map[string]*sadState
	seq         int
	calls       map[string]int
	requests    []module.AuthorizeRequest
	signReqs    []module.SignRequest
	loggedIn    bool

	// Hook, if set, runs first in every method; a non-nil error is
	// returned as is. It may block (honouring ctx) to simulate slowness.
	Hook func(ctx context.Context, method string) error
	// NeedInteractiveLogin makes Login(ctx, false) and ListCredentials
	// fail with ErrNotLoggedIn until an interactive Login.
	NeedInteractiveLogin bool
	// RawECDSA returns r||s instead of DER.
	RawECDSA bool
	// SADLifetime is how long SADs live (default 5 minutes).
	SADLifetime time.Duration
	// DenyBrowser makes AuthorizeInBrowser fail with ErrCanceled.
	DenyBrowser bool

	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
}

// New returns a fake whose PIN is pin, locking after 3 wrong attempts.
func New(pin string) *Fake {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Fake CSC CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &Fake{
		pin: pin, maxAttempts: 3,
		attempts: map[string]int{}, locked: map[string]bool{},
		sads: map[string]*sadState{}, calls: map[string]int{},
		caKey: caKey, caCert: ca,
	}
}

var (
	keyMu    sync.Mutex
	keyCache = map[string]crypto.Signer{}
)

// cachedKey generates keys once per process: RSA generation is slow under
// the race detector.
func cachedKey(name string, gen func() (crypto.Signer, error)) crypto.Signer {
	keyMu.Lock()
	defer keyMu.Unlock()
	if k, ok := keyCache[name]; ok {
		return k
	}
	k, err := gen()
	if err != nil {
		panic(err)
	}
	keyCache[name] = k
	return k
}

// AddRSA adds an RSA credential (keys are shared per bits and n).
func (f *Fake) AddRSA(id string, bits, scal, multisign int, auth module.AuthMode) *Cred {
	k := cachedKey(fmt.Sprintf("rsa%d-%s", bits, id), func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) })
	return f.add(id, k, bits, "", scal, multisign, auth)
}

// AddEC adds an EC credential on curve.
func (f *Fake) AddEC(id string, curve elliptic.Curve, scal, multisign int, auth module.AuthMode) *Cred {
	k := cachedKey(fmt.Sprintf("ec%s-%s", curve.Params().Name, id), func() (crypto.Signer, error) { return ecdsa.GenerateKey(curve, rand.Reader) })
	oid := map[string]string{"P-256": "1.2.840.10045.3.1.7", "P-384": "1.3.132.0.34", "P-521": "1.3.132.0.35"}[curve.Params().Name]
	return f.add(id, k, curve.Params().BitSize, oid, scal, multisign, auth)
}

func (f *Fake) add(id string, key crypto.Signer, bits int, curve string, scal, multisign int, auth module.AuthMode) *Cred {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(100 + f.seq)),
		Subject:      pkix.Name{CommonName: "User " + id, Organization: []string{"csctoken tests"}},
		NotBefore:    time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2035, 1, 2, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.caCert, key.Public(), f.caKey)
	if err != nil {
		panic(err)
	}
	var algos []string
	switch key.(type) {
	case *rsa.PrivateKey:
		algos = []string{"1.2.840.113549.1.1.1", "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.12", "1.2.840.113549.1.1.13", "1.2.840.113549.1.1.10"}
	case *ecdsa.PrivateKey:
		algos = []string{"1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"}
	}
	c := &Cred{
		Credential: module.Credential{
			ID: id, Description: "Key " + id, Enabled: true, KeyAlgos: algos, KeyLen: bits,
			CurveOID: curve, Certificates: [][]byte{der, f.caCert.Raw},
			SCAL: scal, Multisign: multisign, Auth: auth, PINID: "pin-" + id,
		},
		Key: key,
	}
	f.creds = append(f.creds, c)
	f.attempts[id] = f.maxAttempts
	return c
}

// Cred returns a credential by ID (nil if none).
func (f *Fake) Cred(id string) *Cred {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cred(id)
}

func (f *Fake) cred(id string) *Cred {
	for _, c := range f.creds {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// Set runs fn under the fake's lock, to change credentials safely.
func (f *Fake) Set(fn func(creds []*Cred)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.creds)
}

// SetPIN changes the PIN.
func (f *Fake) SetPIN(pin string) {
	f.mu.Lock()
	f.pin = pin
	f.mu.Unlock()
}

// Calls returns how often method was called.
func (f *Fake) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// ResetCalls zeroes the counters and recorded requests.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = map[string]int{}
	f.requests = nil
	f.signReqs = nil
}

// AuthorizeRequests returns the recorded authorization requests (PIN
// included, for assertions).
func (f *Fake) AuthorizeRequests() []module.AuthorizeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]module.AuthorizeRequest(nil), f.requests...)
}

// SignRequests returns the recorded signHash requests.
func (f *Fake) SignRequests() []module.SignRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]module.SignRequest(nil), f.signReqs...)
}

// Locked reports whether a credential is locked.
func (f *Fake) Locked(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.locked[id]
}

func (f *Fake) enter(ctx context.Context, method string) error {
	f.mu.Lock()
	f.calls[method]++
	hook := f.Hook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, method); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	return nil
}

// ListCredentials implements module.Service.
func (f *Fake) ListCredentials(ctx context.Context) ([]module.Credential, error) {
	if err := f.enter(ctx, MList); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.NeedInteractiveLogin && !f.loggedIn {
		return nil, module.ErrNotLoggedIn
	}
	out := make([]module.Credential, len(f.creds))
	for i, c := range f.creds {
		out[i] = c.Credential
	}
	return out, nil
}

// Login implements module.Service.
func (f *Fake) Login(ctx context.Context, interactive bool) error {
	if err := f.enter(ctx, MLogin); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.NeedInteractiveLogin && !f.loggedIn && !interactive {
		return module.ErrNotLoggedIn
	}
	f.loggedIn = true
	return nil
}

// Authorize implements module.Service.
func (f *Fake) Authorize(ctx context.Context, req module.AuthorizeRequest) (module.SAD, error) {
	if err := f.enter(ctx, MAuthorize); err != nil {
		return module.SAD{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	req.PIN = bytes.Clone(req.PIN) // the module wipes its copy after the call
	f.requests = append(f.requests, req)
	c := f.cred(req.CredentialID)
	if c == nil || !c.Enabled {
		return module.SAD{}, fmt.Errorf("credential %q: %w", req.CredentialID, module.ErrRejected)
	}
	if f.locked[c.ID] {
		return module.SAD{}, module.ErrPINLocked
	}
	if c.Auth == module.AuthPIN && string(req.PIN) != f.pin {
		f.attempts[c.ID]--
		if f.attempts[c.ID] <= 0 {
			f.locked[c.ID] = true
			return module.SAD{}, module.ErrPINLocked
		}
		return module.SAD{}, &module.PINError{RemainingAttempts: f.attempts[c.ID]}
	}
	f.attempts[c.ID] = f.maxAttempts
	return f.newSAD(c, req)
}

func (f *Fake) newSAD(c *Cred, req module.AuthorizeRequest) (module.SAD, error) {
	if req.NumSignatures < 1 || req.NumSignatures > max(c.Multisign, 1) {
		return module.SAD{}, fmt.Errorf("numSignatures %d: %w", req.NumSignatures, module.ErrRejected)
	}
	if c.SCAL >= 2 && len(req.Hashes) != req.NumSignatures {
		return module.SAD{}, fmt.Errorf("SCAL2 needs the hashes: %w", module.ErrRejected)
	}
	life := f.SADLifetime
	if life == 0 {
		life = 5 * time.Minute
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	v := hex.EncodeToString(b)
	exp := time.Now().Add(life)
	f.sads[v] = &sadState{cred: c.ID, remaining: req.NumSignatures, hashes: req.Hashes, expires: exp}
	return module.SAD{Value: v, ExpiresAt: exp, Remaining: req.NumSignatures}, nil
}

// AuthorizeInBrowser implements module.Service.
func (f *Fake) AuthorizeInBrowser(ctx context.Context, req module.AuthorizeRequest) (module.SAD, error) {
	if err := f.enter(ctx, MBrowser); err != nil {
		return module.SAD{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	req.PIN = bytes.Clone(req.PIN) // the module wipes its copy after the call
	f.requests = append(f.requests, req)
	if f.DenyBrowser {
		return module.SAD{}, module.ErrCanceled
	}
	c := f.cred(req.CredentialID)
	if c == nil || !c.Enabled {
		return module.SAD{}, module.ErrRejected
	}
	return f.newSAD(c, req)
}

var (
	hashOIDs = map[string]crypto.Hash{
		"1.3.14.3.2.26":          crypto.SHA1,
		"2.16.840.1.101.3.4.2.4": crypto.SHA224,
		"2.16.840.1.101.3.4.2.1": crypto.SHA256,
		"2.16.840.1.101.3.4.2.2": crypto.SHA384,
		"2.16.840.1.101.3.4.2.3": crypto.SHA512,
	}
	impliedHash = map[string]crypto.Hash{
		"1.2.840.113549.1.1.11": crypto.SHA256,
		"1.2.840.113549.1.1.12": crypto.SHA384,
		"1.2.840.113549.1.1.13": crypto.SHA512,
		"1.2.840.113549.1.1.5":  crypto.SHA1,
		"1.2.840.113549.1.1.14": crypto.SHA224,
		"1.2.840.10045.4.3.2":   crypto.SHA256,
		"1.2.840.10045.4.3.3":   crypto.SHA384,
		"1.2.840.10045.4.3.4":   crypto.SHA512,
	}
)

// pssParams is RSASSA-PSS-params for decoding what the module sends.
type pssParams struct {
	Hash    pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:0"`
	MGF     pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:1"`
	Salt    int                      `asn1:"explicit,optional,tag:2,default:20"`
	Trailer int                      `asn1:"explicit,optional,tag:3,default:1"`
}

// SignHash implements module.Service.
func (f *Fake) SignHash(ctx context.Context, req module.SignRequest) ([][]byte, error) {
	if err := f.enter(ctx, MSignHash); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.signReqs = append(f.signReqs, req)
	c := f.cred(req.CredentialID)
	sad := f.sads[req.SAD.Value]
	switch {
	case c == nil:
		f.mu.Unlock()
		return nil, module.ErrRejected
	case sad == nil || sad.cred != c.ID || sad.remaining < len(req.Hashes) || time.Now().After(sad.expires):
		f.mu.Unlock()
		return nil, module.ErrSADInvalid
	}
	if c.SCAL >= 2 {
		for _, h := range req.Hashes {
			found := false
			for _, a := range sad.hashes {
				found = found || bytes.Equal(a, h)
			}
			if !found {
				f.mu.Unlock()
				return nil, fmt.Errorf("hash not authorized by the SAD: %w", module.ErrSADInvalid)
			}
		}
	}
	sad.remaining -= len(req.Hashes)
	if sad.remaining == 0 {
		delete(f.sads, req.SAD.Value)
	}
	raw := f.RawECDSA
	f.mu.Unlock()

	h, ok := impliedHash[req.SignAlgOID]
	if !ok {
		h, ok = hashOIDs[req.HashAlgOID]
	}
	if !ok {
		return nil, fmt.Errorf("no hash for signAlgo %s / %q: %w", req.SignAlgOID, req.HashAlgOID, module.ErrRejected)
	}
	var sigs [][]byte
	for _, digest := range req.Hashes {
		if len(digest) != h.Size() {
			return nil, fmt.Errorf("hash length: %w", module.ErrRejected)
		}
		var sig []byte
		var err error
		switch k := c.Key.(type) {
		case *rsa.PrivateKey:
			if req.SignAlgOID == "1.2.840.113549.1.1.10" {
				var p pssParams
				if rest, perr := asn1.Unmarshal(req.SignAlgParams, &p); perr != nil || len(rest) != 0 {
					return nil, fmt.Errorf("bad PSS params: %v: %w", perr, module.ErrRejected)
				}
				sig, err = rsa.SignPSS(rand.Reader, k, h, digest, &rsa.PSSOptions{SaltLength: p.Salt, Hash: h})
			} else {
				sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, digest)
			}
		case *ecdsa.PrivateKey:
			if raw {
				r, s, e := ecdsa.Sign(rand.Reader, k, digest)
				n := (k.Curve.Params().BitSize + 7) / 8
				sig = make([]byte, 2*n)
				r.FillBytes(sig[:n])
				s.FillBytes(sig[n:])
				err = e
			} else {
				sig, err = ecdsa.SignASN1(rand.Reader, k, digest)
			}
		default:
			err = errors.New("unsupported key")
		}
		if err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
}
