package adapter_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/oauth"
	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
	"github.com/csctoken/csctoken/rssp/service"
)

const clientID = "csctoken"

// formUser is the user at the service's pages, without a browser: an HTTP
// client with a cookie jar that follows the authorization URL, fills the
// login form (user, password) and the consent form (PIN, approve or deny)
// as the pages' HTML says, and ends at the loopback redirect URI. Each
// Open is one flow; the pages' texts are kept for the test.
type formUser struct {
	t  *testing.T
	hc *http.Client

	mu   sync.Mutex
	deny bool
	// hold, when set, stops the user on the consent page (arrived is
	// told) until it is closed, then the form is sent.
	hold, arrived chan struct{}
	abandoned     int // pages that said the request was abandoned
	pin           string
	opened        int
	consents      []string // text of each consent page seen
	errs          []error
	wg            sync.WaitGroup
}

func newFormUser(t *testing.T, srv *rssptest.Server) *formUser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &formUser{t: t, pin: pin, hc: &http.Client{Transport: srv.Client.Transport, Jar: jar, Timeout: 10 * time.Second}}
}

func (u *formUser) set(deny bool, pin string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.deny, u.pin = deny, pin
}

// holdAtConsent makes the next flows stop on the consent page until the
// returned release is called; arrived is closed when one got there.
func (u *formUser) holdAtConsent() (arrived <-chan struct{}, release func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hold, u.arrived = make(chan struct{}), make(chan struct{})
	hold := u.hold
	return u.arrived, func() { close(hold) }
}

func (u *formUser) abandonedPages() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.abandoned
}

func (u *formUser) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.opened
}

func (u *formUser) lastConsent() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.consents) == 0 {
		return ""
	}
	return u.consents[len(u.consents)-1]
}

// check fails the test with the flows' errors.
func (u *formUser) check() {
	u.t.Helper()
	u.wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, err := range u.errs {
		u.t.Error(err)
	}
	u.errs = nil
}

// Open implements oauth.Opener.
func (u *formUser) Open(_ context.Context, raw string) error {
	u.mu.Lock()
	u.opened++
	deny, p := u.deny, u.pin
	u.mu.Unlock()
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		if err := u.flow(raw, deny, p); err != nil {
			u.mu.Lock()
			u.errs = append(u.errs, err)
			u.mu.Unlock()
		}
	}()
	return nil
}

var (
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
	tagRE    = regexp.MustCompile(`<[^>]*>`)
)

func (u *formUser) flow(raw string, deny bool, p string) error {
	resp, err := u.hc.Get(raw)
	for step := 0; step < 6; step++ {
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page, at := string(b), resp.Request.URL
		if at.Scheme == "http" { // the loopback redirect URI: done
			return nil
		}
		form := url.Values{}
		for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		var action string
		switch {
		case strings.Contains(page, `id="abandoned"`):
			u.mu.Lock()
			u.abandoned++
			u.mu.Unlock()
			return nil
		case strings.Contains(page, `id="username"`):
			action = "login"
			form.Set("username", user)
			form.Set("password", password)
		case strings.Contains(page, `id="approve"`):
			action = "consent"
			u.mu.Lock()
			u.consents = append(u.consents, html.UnescapeString(tagRE.ReplaceAllString(page, " ")))
			hold, arrived := u.hold, u.arrived
			u.hold = nil
			u.mu.Unlock()
			if hold != nil {
				close(arrived)
				<-hold
			}
			if deny {
				form.Set("action", "deny")
			} else {
				form.Set("action", "approve")
				if strings.Contains(page, `id="pin"`) {
					form.Set("pin", p)
				}
			}
		default:
			return fmt.Errorf("unexpected page at %s (%d): %.400s", at, resp.StatusCode, page)
		}
		target := at.ResolveReference(&url.URL{Path: action})
		resp, err = u.hc.PostForm(target.String(), form)
	}
	return errors.New("too many pages")
}

// oauthEnv is a real RSSP with alice, the public client csctoken and a
// few credentials.
type oauthEnv struct {
	srv   *rssptest.Server
	user  *formUser
	store *tokenstore.Store
	// rsa: explicit PIN, SCAL 1, multisign 5; ec: explicit PIN, SCAL 2;
	// code: oauth2code, SCAL 1, multisign 1.
	rsa, ec, code string
}

func newOAuthEnv(t *testing.T) *oauthEnv {
	t.Helper()
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	e := &oauthEnv{srv: srv, user: newFormUser(t, srv)}
	e.rsa, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "rsa-2048", PIN: pin, Multisign: 5, Description: "RSA key"})
	e.ec, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "ec-p256", PIN: pin, SCAL: 2, Multisign: 2, Description: "EC key"})
	e.code, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "ec-p256", PIN: pin, AuthMode: csc.AuthModeOAuth2Code, Description: "Code key"})
	if _, _, err := srv.App.Service.AddOAuthClient(context.Background(), service.ClientSpec{ID: clientID, Name: "csctoken desktop",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, Public: true}); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.store, err = tokenstore.New(tokenstore.Options{Dir: t.TempDir(), NoKeyring: true}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *oauthEnv) serviceConfig(auth string) config.Service {
	sc := config.Service{Name: svcName, URL: e.srv.URL, Auth: auth, ClientID: clientID,
		CAFile: filepath.Join(e.srv.Dir, "tls-ca.pem"), CredentialAuth: config.CredentialAuthBrowser, Timeout: 10 * time.Second}
	if auth == config.AuthBasic {
		sc.Username = user
	}
	return sc
}

func (e *oauthEnv) open(t *testing.T, sc config.Service, opts ...cscservice.Option) *cscservice.Service {
	t.Helper()
	opts = append([]cscservice.Option{cscservice.WithSecretStore(e.store), cscservice.WithOpener(e.user),
		cscservice.WithURLWriter(io.Discard), cscservice.WithOAuthTimeout(15 * time.Second)}, opts...)
	s, err := cscservice.Open(sc, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Client().CloseIdleConnections)
	return s
}

func TestOAuth2ServiceLogin(t *testing.T) {
	e := newOAuthEnv(t)
	ctx := context.Background()
	if _, err := cscservice.Open(config.Service{Name: "x", URL: e.srv.URL, Auth: config.AuthOAuth2}, nil); !errors.Is(err, cscservice.ErrNoClientID) {
		t.Fatalf("Open without client_id = %v", err)
	}
	s := e.open(t, e.serviceConfig(config.AuthOAuth2))

	// Without a token, nothing but an interactive Login opens the browser.
	if err := s.Login(ctx, false); !errors.Is(err, module.ErrNotLoggedIn) || !strings.Contains(err.Error(), "csctoken login") {
		t.Fatalf("Login(non-interactive) = %v, want ErrNotLoggedIn", err)
	}
	if _, err := s.ListCredentials(ctx); !errors.Is(err, module.ErrNotLoggedIn) {
		t.Fatalf("ListCredentials = %v, want ErrNotLoggedIn", err)
	}
	if e.user.count() != 0 {
		t.Fatal("the browser opened without an interactive login")
	}

	// The user declines the service's consent page.
	e.user.set(true, "")
	if err := s.Login(ctx, true); !errors.Is(err, module.ErrCanceled) {
		t.Fatalf("Login declined = %v, want ErrCanceled", err)
	}
	e.user.check()
	if !strings.Contains(e.user.lastConsent(), "Allow access") {
		t.Errorf("service consent page:\n%s", e.user.lastConsent())
	}

	e.user.set(false, "")
	if err := s.Login(ctx, true); err != nil {
		t.Fatal(err)
	}
	e.user.check()
	if n := e.user.count(); n != 2 {
		t.Fatalf("%d browser flows, want 2", n)
	}
	creds, err := s.ListCredentials(ctx)
	if err != nil || len(creds) != 3 {
		t.Fatalf("ListCredentials = %d, %v", len(creds), err)
	}
	// A second adapter (another process) finds the stored token.
	s2 := e.open(t, e.serviceConfig(config.AuthOAuth2))
	if err := s2.Login(ctx, false); err != nil {
		t.Fatalf("Login from the stored token: %v", err)
	}
	tok, err := s2.TokenStatus(ctx)
	if err != nil || tok == nil || tok.RefreshToken == "" {
		t.Fatalf("stored token %v, %v", tok, err)
	}
	// Logout revokes at oauth2/revoke and forgets.
	if err := s2.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if r := e.srv.Call(t, "credentials/list", tok.AccessToken, struct{}{}); r.Status != 401 {
		t.Errorf("access token after logout: %d", r.Status)
	}
	s3 := e.open(t, e.serviceConfig(config.AuthOAuth2))
	if err := s3.Login(ctx, false); !errors.Is(err, module.ErrNotLoggedIn) {
		t.Fatalf("Login after logout = %v, want ErrNotLoggedIn", err)
	}
	// BrowserLogin (csctoken login) always goes to the browser.
	if _, err := s3.BrowserLogin(ctx); err != nil {
		t.Fatal(err)
	}
	e.user.check()
	if e.user.count() != 3 {
		t.Fatalf("%d browser flows, want 3", e.user.count())
	}
	if err := s3.Login(ctx, false); err != nil {
		t.Fatal(err)
	}
}

func TestAuthorizeInBrowser(t *testing.T) {
	e := newOAuthEnv(t)
	ctx := context.Background()
	s := e.open(t, e.serviceConfig(config.AuthOAuth2))
	if err := s.Login(ctx, true); err != nil {
		t.Fatal(err)
	}
	e.user.check()
	if _, err := s.ListCredentials(ctx); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("a document"))
	// The module names the key as its CKA_LABEL (the description).
	req := module.AuthorizeRequest{CredentialID: e.ec, KeyLabel: "EC key", NumSignatures: 1, Hashes: [][]byte{digest[:]}, HashAlgOID: csc.OIDSHA256}

	// Declined: ErrCanceled, no signature.
	e.user.set(true, "")
	if _, err := s.AuthorizeInBrowser(ctx, req); !errors.Is(err, module.ErrCanceled) {
		t.Fatalf("declined: %v", err)
	}
	e.user.check()

	e.user.set(false, pin)
	sad, err := s.AuthorizeInBrowser(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.user.check()
	page := e.user.lastConsent()
	for _, want := range []string{base64.StdEncoding.EncodeToString(digest[:]), filepath.Base(os.Args[0]) + " — EC key", "EC key"} {
		if !strings.Contains(page, want) {
			t.Errorf("the consent page does not show %q:\n%s", want, page)
		}
	}
	if sad.Value == "" || sad.Remaining != 1 || sad.ExpiresAt.IsZero() {
		t.Fatalf("SAD: remaining %d, expires %v", sad.Remaining, sad.ExpiresAt)
	}
	sreq := module.SignRequest{CredentialID: e.ec, SAD: sad, Hashes: [][]byte{digest[:]}, HashAlgOID: csc.OIDSHA256, SignAlgOID: csc.OIDECDSAWithSHA256}
	sigs, err := s.SignHash(ctx, sreq)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("SignHash with the credential token: %v", err)
	}
	// Used up: ErrSADInvalid (the module authorizes again), not a lost login.
	if _, err := s.SignHash(ctx, sreq); !errors.Is(err, module.ErrSADInvalid) {
		t.Fatalf("SignHash with a used token = %v, want ErrSADInvalid", err)
	}

	// A SCAL1 batch without hashes: the page says so.
	sad, err = s.AuthorizeInBrowser(ctx, module.AuthorizeRequest{CredentialID: e.rsa, NumSignatures: 3})
	if err != nil || sad.Remaining != 3 {
		t.Fatalf("batch: %v (remaining %d)", err, sad.Remaining)
	}
	e.user.check()
	if page := e.user.lastConsent(); !strings.Contains(page, "did not name the documents") ||
		!regexp.MustCompile(`Number of signatures\s+3`).MatchString(page) {
		t.Errorf("batch consent page:\n%s", page)
	}

	// The user never comes back: canceled.
	short := e.open(t, e.serviceConfig(config.AuthOAuth2), cscservice.WithOAuthTimeout(300*time.Millisecond),
		cscservice.WithOpener(oauth.OpenerFunc(func(context.Context, string) error { return nil })))
	if _, err := short.AuthorizeInBrowser(ctx, req); !errors.Is(err, module.ErrCanceled) || !errors.Is(err, oauth.ErrTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	// The module's own deadline (its interactive timeout) is a cancel too.
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := short.AuthorizeInBrowser(dctx, req); !errors.Is(err, module.ErrCanceled) {
		t.Fatalf("deadline: %v", err)
	}
	// C_Finalize: the context's cancellation, as it is.
	cctx, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := s.AuthorizeInBrowser(cctx, req); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}

	// Without client_id a basic service cannot authorize in the browser.
	sc := e.serviceConfig(config.AuthBasic)
	sc.ClientID = ""
	if _, err := e.open(t, sc).AuthorizeInBrowser(ctx, req); !errors.Is(err, cscservice.ErrNoClientID) {
		t.Fatalf("no client_id: %v", err)
	}
}

// newBrowserRig is a module driven in-process over the adapter, with
// auth = "oauth2" and credential_auth = "browser" (or auth = "basic" and
// credential_auth = "pin" with basicPIN), the user at the service's pages
// played by e.user.
func newBrowserRig(t *testing.T, e *oauthEnv, basicPIN bool) *rig {
	t.Helper()
	r := &rig{t: t, srv: e.srv, url: e.srv.URL, store: e.store}
	dir := t.TempDir()
	svc := fmt.Sprintf(`auth = "oauth2"
client_id = %q
credential_auth = "browser"`, clientID)
	if basicPIN {
		ctx := context.Background()
		cl, err := cscclient.New(e.srv.URL, cscclient.WithCAFile(filepath.Join(e.srv.Dir, "tls-ca.pem")))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := cl.LoginToken(ctx, user, password, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.NewBasicSession(user, e.store, nil).Set(ctx, tok); err != nil {
			t.Fatal(err)
		}
		svc = fmt.Sprintf(`auth = "basic"
username = %q
client_id = %q`, user, clientID)
	}
	text := fmt.Sprintf(`cache_dir = %q

[[service]]
name = %q
url = %q
%s
ca_file = %q
timeout = "10s"
`, filepath.Join(dir, "cache"), svcName, e.srv.URL, svc, filepath.Join(e.srv.Dir, "tls-ca.pem"))
	path := filepath.Join(dir, "csctoken.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r.m = module.New(module.Options{
		LoadConfig: func() (*config.Config, error) { return config.Load(path) },
		NewService: cscservice.Factory(cscservice.WithSecretStore(e.store), cscservice.WithOpener(e.user),
			cscservice.WithURLWriter(io.Discard), cscservice.WithOAuthTimeout(15*time.Second)),
		NoBackgroundRefresh: true,
	})
	r.must(r.m.Initialize(module.InitArgs{}))
	t.Cleanup(func() { _ = r.m.Finalize() })
	ti, err := r.m.GetTokenInfo(0)
	r.must(err)
	want, not := uint(ck.CKF_PROTECTED_AUTHENTICATION_PATH), uint(ck.CKF_LOGIN_REQUIRED)
	if basicPIN {
		want, not = not, want
	}
	if ti.Flags&want == 0 || ti.Flags&not != 0 {
		t.Fatalf("token flags %#x", ti.Flags)
	}
	r.h, err = r.m.OpenSession(0, ck.CKF_SERIAL_SESSION|ck.CKF_RW_SESSION)
	r.must(err)
	return r
}

func TestModuleBrowserMode(t *testing.T) {
	e := newOAuthEnv(t)
	r := newBrowserRig(t, e, false)
	// C_Login without a PIN on the protected path: the service login in
	// the browser, then the listing.
	r.must(r.m.Login(r.h, ck.CKU_USER, nil))
	e.user.check()
	if e.user.count() != 1 {
		t.Fatalf("%d browser flows at C_Login, want 1", e.user.count())
	}
	rsaKey, ecKey := r.key("RSA key"), r.key("EC key")

	// SCAL 1, multisign 5: one consent covers the batch.
	e.user.set(false, pin)
	for i := range 3 {
		r.signAndVerify(ck.CKM_SHA256_RSA_PKCS, rsaKey, fmt.Appendf(nil, "invoice %d", i))
	}
	e.user.check()
	if n := e.user.count(); n != 2 {
		t.Fatalf("%d browser flows after 3 SCAL1 signatures, want 2", n)
	}
	// SCAL 2: a consent per signature, showing the hash.
	msg := []byte("contract")
	r.signAndVerify(ck.CKM_ECDSA, ecKey, msg)
	e.user.check()
	d := sha256.Sum256(msg)
	if page := e.user.lastConsent(); !strings.Contains(page, base64.StdEncoding.EncodeToString(d[:])) {
		t.Errorf("consent page without the hash:\n%s", page)
	}
	// Declined: CKR_FUNCTION_CANCELED, and no signature in the audit.
	before := e.srv.AuditCount(t, "sign", e.ec)
	e.user.set(true, "")
	_, err := r.sign(ck.Mechanism{Type: ck.CKM_ECDSA}, ecKey, d[:])
	r.wantRV(err, ck.CKR_FUNCTION_CANCELED)
	e.user.check()
	if after := e.srv.AuditCount(t, "sign", e.ec); after != before {
		t.Errorf("sign rows %d → %d after a declined authorization", before, after)
	}
	// The oauth2code credential goes the same way.
	e.user.set(false, pin)
	r.signAndVerify(ck.CKM_ECDSA, r.key("Code key"), []byte("code"))
	e.user.check()

	// C_Finalize while the consent page waits for the user: C_Sign ends
	// at once, the module tells the service the request was abandoned,
	// and the page the user still has open says so and signs nothing.
	arrived, release := e.user.holdAtConsent()
	before = e.srv.AuditCount(t, "sign", e.ec)
	done := make(chan error, 1)
	go func() {
		_, err := r.sign(ck.Mechanism{Type: ck.CKM_ECDSA}, ecKey, d[:])
		done <- err
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the consent page was not opened")
	}
	start := time.Now()
	r.must(r.m.Finalize())
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("C_Sign succeeded across C_Finalize")
		}
		t.Logf("C_Sign after C_Finalize (%v): %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(3 * time.Second):
		t.Fatal("C_Sign still waits for the browser after C_Finalize")
	}
	release()
	e.user.check()
	if n := e.user.abandonedPages(); n != 1 {
		t.Errorf("%d consent submits answered \"abandoned\", want 1", n)
	}
	if after := e.srv.AuditCount(t, "sign", e.ec); after != before {
		t.Errorf("sign rows %d → %d after approving an abandoned request", before, after)
	}
	if n := e.srv.AuditCount(t, "oauth2 abandon", e.ec); n != 1 {
		t.Errorf("%d oauth2 abandon audit rows, want 1", n)
	}
}

func TestModulePINModeBrowserCredential(t *testing.T) {
	e := newOAuthEnv(t)
	r := newBrowserRig(t, e, true)
	r.must(r.login(pin))
	if e.user.count() != 0 {
		t.Fatal("the browser opened at C_Login in pin mode")
	}
	// PIN credentials sign without the browser ...
	r.signAndVerify(ck.CKM_ECDSA, r.key("EC key"), []byte("pin"))
	if e.user.count() != 0 {
		t.Fatal("the browser opened for a PIN credential")
	}
	// ... the oauth2code one on the consent page (login page first: the
	// browser has no session with the service yet).
	e.user.set(false, pin)
	r.signAndVerify(ck.CKM_ECDSA, r.key("Code key"), []byte("code"))
	e.user.check()
	if e.user.count() != 1 || !strings.Contains(e.user.lastConsent(), "Code key") {
		t.Fatalf("%d flows; consent page:\n%s", e.user.count(), e.user.lastConsent())
	}
}
