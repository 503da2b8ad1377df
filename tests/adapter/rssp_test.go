package adapter_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
	rsspconfig "github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user     = "alice"
	password = "correct horse battery staple"
	pin      = "123456"
	svcName  = "Test RSSP"
)

// rig is a module driven in-process over the adapter against a real RSSP.
type rig struct {
	t     *testing.T
	srv   *rssptest.Server
	url   string // what the config points at (the server, or a proxy)
	store *tokenstore.Store
	m     *module.Module
	h     module.SessionHandle
}

type rigOptions struct {
	url     string // default srv.URL
	timeout string // default "10s"
	noLogin bool   // store no service token
}

// newRig logs in to the service through cscclient (as `csctoken login`
// would), writes a module config pointing at it and initializes a module
// with the adapter.
func newRig(t *testing.T, srv *rssptest.Server, o rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, srv: srv, url: o.url}
	if r.url == "" {
		r.url = srv.URL
	}
	if o.timeout == "" {
		o.timeout = "10s"
	}
	store, err := tokenstore.New(tokenstore.Options{Dir: t.TempDir(), NoKeyring: true})
	if err != nil {
		t.Fatal(err)
	}
	r.store = store
	caFile := filepath.Join(srv.Dir, "tls-ca.pem")
	if !o.noLogin {
		ctx := context.Background()
		cl, err := cscclient.New(r.url, cscclient.WithCAFile(caFile))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := cl.LoginToken(ctx, user, password, true)
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if err := cl.NewBasicSession(user, store, nil).Set(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "csctoken.toml")
	text := fmt.Sprintf(`cache_dir = %q

[[service]]
name = %q
url = %q
auth = "basic"
username = %q
ca_file = %q
timeout = %q
list_timeout = %q
`, filepath.Join(dir, "cache"), svcName, r.url, user, caFile, o.timeout, o.timeout)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := module.Options{
		LoadConfig:          func() (*config.Config, error) { return config.Load(path) },
		NewService:          cscservice.Factory(cscservice.WithSecretStore(store)),
		NoBackgroundRefresh: true,
	}
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r.m = module.New(opts)
	r.must(r.m.Initialize(module.InitArgs{}))
	t.Cleanup(func() { _ = r.m.Finalize() })
	slots, err := r.m.GetSlotList(true)
	r.must(err)
	if len(slots) != 1 {
		t.Fatalf("%d slots, want 1", len(slots))
	}
	ti, err := r.m.GetTokenInfo(slots[0])
	r.must(err)
	if got := strings.TrimRight(string(ti.Label[:]), " "); got != svcName {
		t.Fatalf("token label %q, want %q", got, svcName)
	}
	if ti.Flags&ck.CKF_LOGIN_REQUIRED == 0 {
		t.Errorf("token flags %#x lack CKF_LOGIN_REQUIRED", ti.Flags)
	}
	r.h, err = r.m.OpenSession(slots[0], ck.CKF_SERIAL_SESSION|ck.CKF_RW_SESSION)
	r.must(err)
	return r
}

func (r *rig) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

func rv(err error) ck.Error { return ck.Error(ck.RV(err)) }

func (r *rig) wantRV(err error, want ck.Error) {
	r.t.Helper()
	if got := rv(err); got != want {
		r.t.Fatalf("rv = %v, want %v (err %v)", got, want, err)
	}
}

func (r *rig) login(p string) error { return r.m.Login(r.h, ck.CKU_USER, []byte(p)) }

func (r *rig) find(tmpl ...ck.Attribute) []module.ObjectHandle {
	r.t.Helper()
	r.must(r.m.FindObjectsInit(r.h, tmpl))
	var all []module.ObjectHandle
	for {
		got, err := r.m.FindObjects(r.h, 4)
		r.must(err)
		if len(got) == 0 {
			break
		}
		all = append(all, got...)
	}
	r.must(r.m.FindObjectsFinal(r.h))
	return all
}

func (r *rig) attr(o module.ObjectHandle, typ uint) []byte {
	r.t.Helper()
	q := []module.AttributeRequest{{Type: typ}}
	r.must(r.m.GetAttributeValue(r.h, o, q))
	q[0].Buf = make([]byte, q[0].Len)
	r.must(r.m.GetAttributeValue(r.h, o, q))
	return q[0].Buf[:q[0].Len]
}

func attrClass(c uint) ck.Attribute { return ck.Attribute{Type: ck.CKA_CLASS, Value: ck.ULongBytes(c)} }

// key is a private key with its certificate.
type key struct {
	h    module.ObjectHandle
	cert *x509.Certificate
}

// key finds the private key labelled label (the credential's description)
// and the user certificate with the same CKA_ID.
func (r *rig) key(label string) key {
	r.t.Helper()
	keys := r.find(attrClass(ck.CKO_PRIVATE_KEY), ck.Attribute{Type: ck.CKA_LABEL, Value: []byte(label)})
	if len(keys) != 1 {
		r.t.Fatalf("%d private keys labelled %q, want 1", len(keys), label)
	}
	id := r.attr(keys[0], ck.CKA_ID)
	certs := r.find(attrClass(ck.CKO_CERTIFICATE), ck.Attribute{Type: ck.CKA_ID, Value: id})
	if len(certs) != 1 {
		r.t.Fatalf("%d certificates with the key's CKA_ID, want 1", len(certs))
	}
	cert, err := x509.ParseCertificate(r.attr(certs[0], ck.CKA_VALUE))
	r.must(err)
	return key{h: keys[0], cert: cert}
}

func (r *rig) sign(mech ck.Mechanism, k key, data []byte) ([]byte, error) {
	r.t.Helper()
	if err := r.m.SignInit(r.h, mech, k.h); err != nil {
		return nil, err
	}
	n, err := r.m.Sign(r.h, data, nil)
	if err != nil {
		return nil, err
	}
	sig := make([]byte, n)
	n, err = r.m.Sign(r.h, data, sig)
	return sig[:n], err
}

var pssParams = ck.PSSParams{HashAlg: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA256, SLen: 32}.Encode()

// signAndVerify signs msg with mech and verifies the signature with the
// certificate.
func (r *rig) signAndVerify(mech uint, k key, msg []byte) {
	r.t.Helper()
	digest := sha256.Sum256(msg)
	var (
		m    = ck.Mechanism{Type: mech}
		data = digest[:]
	)
	switch mech {
	case ck.CKM_SHA256_RSA_PKCS:
		data = msg
	case ck.CKM_RSA_PKCS_PSS:
		m.Parameter = pssParams
	}
	sig, err := r.sign(m, k, data)
	if err != nil {
		r.t.Fatalf("sign %#x: %v", mech, err)
	}
	if err := verify(k.cert, mech, digest[:], sig); err != nil {
		r.t.Fatalf("mechanism %#x: %v", mech, err)
	}
}

func verify(cert *x509.Certificate, mech uint, digest, sig []byte) error {
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if mech == ck.CKM_RSA_PKCS_PSS {
			return rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256})
		}
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig)
	case *ecdsa.PublicKey:
		n := len(sig) / 2
		if len(sig) != 2*((pub.Curve.Params().BitSize+7)/8) {
			return fmt.Errorf("ECDSA signature of %d bytes is not r||s", len(sig))
		}
		if !ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unexpected key %T", cert.PublicKey)
}

// enrol adds the user and an RSA-2048 and an EC P-256 SCAL1 credential.
func enrol(t *testing.T, srv *rssptest.Server) (rsaID, ecID string) {
	t.Helper()
	srv.AddUser(t, user, password)
	rsaID, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "rsa-2048", PIN: pin, Multisign: 5, Description: "RSA key"})
	ecID, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "ec-p256", PIN: pin, Description: "EC key"})
	return rsaID, ecID
}

func TestModuleSignsThroughRSSP(t *testing.T) {
	for _, backend := range []rssptest.Backend{rssptest.Soft, rssptest.PKCS11} {
		t.Run(string(backend), func(t *testing.T) {
			srv := rssptest.Start(t, rssptest.Options{Backend: backend})
			enrol(t, srv)
			r := newRig(t, srv, rigOptions{})

			// Public objects only before C_Login.
			if keys := r.find(attrClass(ck.CKO_PRIVATE_KEY)); len(keys) != 0 {
				t.Fatalf("%d private keys before login", len(keys))
			}
			r.must(r.login(pin))
			rsaKey, ecKey := r.key("RSA key"), r.key("EC key")
			tests := []struct {
				name string
				mech uint
				k    key
			}{
				{"ok CKM_SHA256_RSA_PKCS", ck.CKM_SHA256_RSA_PKCS, rsaKey},
				{"ok CKM_RSA_PKCS_PSS", ck.CKM_RSA_PKCS_PSS, rsaKey},
				{"ok CKM_ECDSA", ck.CKM_ECDSA, ecKey},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					r.t = t
					for i := range 2 {
						r.signAndVerify(tc.mech, tc.k, fmt.Appendf(nil, "document %d for %s", i, tc.name))
					}
				})
			}
		})
	}
}

func TestModuleWrongPINThenLocked(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{Edit: func(c *rsspconfig.Config) { c.Security.PINRetries = 3 }})
	enrol(t, srv)
	r := newRig(t, srv, rigOptions{})
	tokenFlags := func() uint {
		ti, err := r.m.GetTokenInfo(0)
		r.must(err)
		return ti.Flags
	}
	r.wantRV(r.login("000000"), ck.CKR_PIN_INCORRECT)
	r.wantRV(r.login("000000"), ck.CKR_PIN_INCORRECT)
	if f := tokenFlags(); f&ck.CKF_USER_PIN_FINAL_TRY == 0 {
		t.Errorf("token flags %#x lack CKF_USER_PIN_FINAL_TRY with one attempt left", f)
	}
	r.wantRV(r.login("000000"), ck.CKR_PIN_LOCKED)
	if f := tokenFlags(); f&ck.CKF_USER_PIN_LOCKED == 0 {
		t.Errorf("token flags %#x lack CKF_USER_PIN_LOCKED", f)
	}
	r.wantRV(r.login(pin), ck.CKR_PIN_LOCKED)
}

func TestModuleNotLoggedInWithService(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	enrol(t, srv)
	r := newRig(t, srv, rigOptions{noLogin: true})
	err := r.login(pin)
	r.wantRV(err, ck.CKR_USER_NOT_LOGGED_IN)
	if !strings.Contains(err.Error(), "csctoken login") {
		t.Errorf("error %q does not say to run csctoken login", err)
	}
	// Logging in afterwards (as `csctoken login` does) makes C_Login work
	// without restarting the module.
	s, err := cscservice.Open(config.Service{Name: svcName, URL: srv.URL, Auth: config.AuthBasic, Username: user,
		CAFile: filepath.Join(srv.Dir, "tls-ca.pem")}, nil, cscservice.WithSecretStore(r.store))
	r.must(err)
	if _, err := s.PasswordLogin(context.Background(), "wrong"); !errors.Is(err, cscservice.ErrWrongPassword) {
		t.Fatalf("PasswordLogin(wrong) = %v, want ErrWrongPassword", err)
	}
	if _, err := s.PasswordLogin(context.Background(), password); err != nil {
		t.Fatal(err)
	}
	r.must(r.login(pin))
	r.signAndVerify(ck.CKM_ECDSA, r.key("EC key"), []byte("after login"))
	// A revoked login is not logged in either: C_Sign logs the token out.
	r.must(s.Logout(context.Background()))
	_, err = r.sign(ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, r.key("RSA key"), []byte("x"))
	r.wantRV(err, ck.CKR_USER_NOT_LOGGED_IN)
	r.wantRV(r.login(pin), ck.CKR_USER_NOT_LOGGED_IN)
}

func TestModuleSCAL2AuthorizesEachSignature(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "ec-p384", PIN: pin, SCAL: 2, Multisign: 5, Description: "SCAL2 key"})
	r := newRig(t, srv, rigOptions{})
	r.must(r.login(pin))
	k := r.key("SCAL2 key")
	before := srv.AuditCount(t, "authorize", id)
	const n = 3
	for i := range n {
		digest := sha256.Sum256(fmt.Appendf(nil, "doc %d", i))
		// CKM_ECDSA with a SHA-256 digest on a P-384 key.
		sig, err := r.sign(ck.Mechanism{Type: ck.CKM_ECDSA}, k, digest[:])
		r.must(err)
		r.must(verify(k.cert, ck.CKM_ECDSA, digest[:], sig))
	}
	if got := srv.AuditCount(t, "authorize", id) - before; got != n {
		t.Errorf("%d authorize rows for %d SCAL2 signatures, want %d", got, n, n)
	}
	if got := srv.AuditCount(t, "sign", id); got != n {
		t.Errorf("%d sign rows, want %d", got, n)
	}
	// A wrong PIN at the first signature logs the token out.
	r.must(r.m.Logout(r.h))
	r.must(r.login("999999"))
	_, err := r.sign(ck.Mechanism{Type: ck.CKM_ECDSA}, k, make([]byte, 32))
	if err == nil {
		t.Fatal("signature with a wrong SCAL2 PIN succeeded")
	}
	r.wantRV(err, ck.CKR_USER_NOT_LOGGED_IN)
}

// proxy forwards TCP to the server; it can be stopped and restarted on the
// same port (the server "goes away" and "comes back"), or made to accept
// connections without ever answering.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	hang  bool
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) listen(addr string) {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.serve(ln)
}

func (p *proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns[c] = true
		hang := p.hang
		p.mu.Unlock()
		if hang {
			continue // held open, never answered
		}
		go p.forward(c)
	}
}

func (p *proxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

func (p *proxy) closeConns() {
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// stop closes the listener and every connection: connections are refused.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.closeConns()
}

// restart listens again on the same port.
func (p *proxy) restart() { p.listen(p.addr) }

// setHang makes new connections hang (existing ones are closed).
func (p *proxy) setHang(h bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hang = h
	p.closeConns()
}

func TestModuleServerGoneAndBack(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	enrol(t, srv)
	p := startProxy(t, srv.Addr())
	const timeout = 3 * time.Second
	r := newRig(t, srv, rigOptions{url: "https://" + p.addr + "/csc/v2", timeout: timeout.String()})
	r.must(r.login(pin))
	rsaKey, ecKey := r.key("RSA key"), r.key("EC key")
	r.signAndVerify(ck.CKM_SHA256_RSA_PKCS, rsaKey, []byte("before"))

	failsWithin := func(what string, min, max time.Duration) {
		t.Helper()
		start := time.Now()
		_, err := r.sign(ck.Mechanism{Type: ck.CKM_ECDSA}, ecKey, make([]byte, 32))
		took := time.Since(start)
		r.wantRV(err, ck.CKR_DEVICE_ERROR)
		if took < min || took > max {
			t.Errorf("%s: CKR_DEVICE_ERROR after %v, want between %v and %v", what, took, min, max)
		}
	}

	// Stopped: connections refused.
	p.stop()
	failsWithin("server stopped", 0, timeout+time.Second)
	// Back on the same address: signing works again, in the same session.
	p.restart()
	r.signAndVerify(ck.CKM_ECDSA, ecKey, []byte("after restart"))
	r.signAndVerify(ck.CKM_RSA_PKCS_PSS, rsaKey, []byte("after restart"))

	// Accepting but never answering: the configured timeout bounds it.
	// (The pause lets the client notice that its kept-alive connections
	// were closed, as it has time to after any real outage; a request
	// already written on a connection that then dies is not retried.)
	p.setHang(true)
	time.Sleep(200 * time.Millisecond)
	failsWithin("server hanging", timeout-500*time.Millisecond, timeout+2*time.Second)
	p.setHang(false)
	r.signAndVerify(ck.CKM_ECDSA, ecKey, []byte("after the hang"))
}
