//go:build rssp

// This file runs the flows against the real rssp (a server package), so it
// is built only with -tags rssp: `go test ./cscclient/...` builds no server
// package; make test runs it with the tag.

package oauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/oauth"
	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/internal/chromiumtest"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user     = "alice"
	password = "correct horse battery"
	pin      = "123456"
	clientID = "csctoken"
)

// plan is what the user does in the browser for one flow; the chromeOpener
// signs in as user with password.
type plan struct {
	chromiumtest.Plan
	editURL func(u *url.URL) // changes the URL before it is opened
	done    chan flowOutcome // the driver's result
}

// flowOutcome is how the browser's side of a flow ended.
type flowOutcome struct {
	chromiumtest.Outcome
	err error
}

// chromeOpener is the Opener of the tests: it hands the URL to the
// headless Chromium and plays the user with the current plan, in the
// background, as a system browser would.
type chromeOpener struct {
	browser context.Context
	mu      sync.Mutex
	plan    *plan
	urls    []string
}

func (o *chromeOpener) next(p *plan) *plan {
	o.mu.Lock()
	defer o.mu.Unlock()
	p.done = make(chan flowOutcome, 1)
	o.plan = p
	return p
}

func (o *chromeOpener) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.urls)
}

func (o *chromeOpener) lastURL() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.urls[len(o.urls)-1]
}

func (o *chromeOpener) Open(_ context.Context, raw string) error {
	o.mu.Lock()
	p := o.plan
	o.urls = append(o.urls, raw)
	o.mu.Unlock()
	if p == nil {
		return errors.New("no plan for this flow")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if p.editURL != nil {
		p.editURL(u)
	}
	pl := p.Plan
	pl.User, pl.Password = user, password
	go func() {
		out, err := chromiumtest.Drive(o.browser, u.String(), pl)
		p.done <- flowOutcome{Outcome: out, err: err}
	}()
	return nil
}

// wait returns the driver's outcome.
func (p *plan) wait(t *testing.T) flowOutcome {
	t.Helper()
	select {
	case r := <-p.done:
		if r.err != nil {
			t.Fatalf("browser (pages %v): %v", r.Pages, r.err)
		}
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the browser did not finish")
		return flowOutcome{}
	}
}

// browserEnv is a real RSSP with alice, two oauth2code credentials and the
// public client csctoken, a cscclient for it and an oauth.Client that
// opens the headless Chromium.
type browserEnv struct {
	srv    *rssptest.Server
	cl     *cscclient.Client
	opener *chromeOpener
	oc     *oauth.Client
	// ec is ECDSA P-256, SCAL 2 (hashes required), multisign 5; rsa is
	// RSA-2048, SCAL 1, multisign 3; both with a PIN.
	ec, rsa string
}

func newBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	chromiumtest.Need(t)
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	e := &browserEnv{srv: srv}
	e.ec, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, SCAL: 2,
		Multisign: 5, AuthMode: csc.AuthModeOAuth2Code, Description: "Contract signing key"})
	e.rsa, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.RSA2048, PIN: pin,
		Multisign: 3, AuthMode: csc.AuthModeOAuth2Code, Description: "Invoices"})
	ctx := context.Background()
	if _, _, err := srv.App.Service.AddOAuthClient(ctx, service.ClientSpec{ID: clientID, Name: "csctoken desktop",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, Public: true}); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.cl, err = cscclient.New(srv.URL, cscclient.WithRootCAs(srv.CAPool)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cl.CloseIdleConnections)
	e.opener = &chromeOpener{browser: chromiumtest.Start(t, filepath.Join(srv.Dir, ca.TLSCertFile))}
	e.oc = e.newOAuth(t, oauth.Config{})
	return e
}

func (e *browserEnv) newOAuth(t *testing.T, cfg oauth.Config) *oauth.Client {
	t.Helper()
	cfg.ClientID = clientID
	if cfg.Opener == nil {
		cfg.Opener = e.opener
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	oc, err := oauth.NewForService(context.Background(), e.cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return oc
}

// signAndVerify signs hashes with the credential token as the Bearer (no
// SAD) and verifies the signatures with the certificate that
// credentials/info returns for the same token.
func (e *browserEnv) signAndVerify(t *testing.T, tok *oauth.CredentialToken, hashes [][]byte) {
	t.Helper()
	ctx := cscclient.WithCredentialToken(context.Background(), tok.AccessToken)
	info, err := e.cl.CredentialInfo(ctx, &csc.CredentialsInfoRequest{CredentialID: tok.CredentialID, Certificates: csc.CertsChain})
	if err != nil {
		t.Fatalf("credentials/info with the credential token: %v", err)
	}
	if info.Cert == nil || len(info.Cert.Certificates) == 0 {
		t.Fatal("no certificate")
	}
	cert, err := x509.ParseCertificate(info.Cert.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	algo := csc.OIDSHA256WithRSA
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); ok {
		algo = csc.OIDECDSAWithSHA256
	}
	res, err := e.cl.SignHash(ctx, &csc.SignHashRequest{CredentialID: tok.CredentialID, Hashes: csc.BytesList(hashes),
		HashAlgorithmOID: csc.OIDSHA256, SignAlgo: algo})
	if err != nil {
		t.Fatalf("signHash with the credential token: %v", err)
	}
	for i, h := range hashes {
		switch pub := cert.PublicKey.(type) {
		case *ecdsa.PublicKey:
			if !ecdsa.VerifyASN1(pub, h, res.Signatures[i]) {
				t.Fatalf("signature %d does not verify", i)
			}
		case *rsa.PublicKey:
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h, res.Signatures[i]); err != nil {
				t.Fatalf("signature %d: %v", i, err)
			}
		default:
			t.Fatalf("key %T", pub)
		}
	}
	// The token covered exactly this batch.
	_, err = e.cl.SignHash(ctx, &csc.SignHashRequest{CredentialID: tok.CredentialID, Hashes: csc.BytesList(hashes[:1]),
		HashAlgorithmOID: csc.OIDSHA256, SignAlgo: algo})
	if err == nil {
		t.Fatal("the credential token signed more than it was authorized for")
	}
}

// TestBrowser runs the flows against the real RSSP in a headless Chromium:
// service login through a cscclient.Session (login page, consent),
// credentials listed with the token, refreshed silently, logout; the
// credential scope with RAR labels, and with the CSC parameters pushed or
// not, each signed with the credential token and verified; a user who
// denies; a forged state.
func TestBrowser(t *testing.T) {
	e := newBrowserEnv(t)
	watch := watchListeners(t)
	ctx := context.Background()
	start := time.Now()

	t.Run("service login, refresh, logout", func(t *testing.T) {
		flowStart := time.Now()
		store, err := tokenstore.New(tokenstore.Options{Dir: t.TempDir(), NoKeyring: true})
		if err != nil {
			t.Fatal(err)
		}
		s := e.oc.NewSession(user, store)
		e.cl.SetTokenSource(s)
		defer e.cl.SetTokenSource(nil)
		p := e.opener.next(&plan{Plan: chromiumtest.Plan{WantShown: []string{"csctoken desktop", "Signed in as " + user}}})
		n0 := e.opener.count()
		// No token yet: the Session's Login opens the browser.
		list, err := e.cl.ListCredentials(ctx, &csc.CredentialsListRequest{})
		if err != nil {
			t.Fatalf("credentials/list: %v", err)
		}
		out := p.wait(t)
		if len(list.CredentialIDs) != 2 || e.opener.count() != n0+1 {
			t.Fatalf("credentials %v after %d browser flows", list.CredentialIDs, e.opener.count()-n0)
		}
		if !strings.Contains(out.Message, "You can close this window") || out.Pages[0] != "login" {
			t.Fatalf("browser: %+v", out)
		}
		if u := e.opener.lastURL(); !strings.Contains(u, "request_uri=") || strings.Contains(u, "code_challenge") {
			t.Errorf("not pushed: %s", u)
		}
		checkClosed(t, watch.last(t))
		t1 := stored(t, store, e.oc)
		if t1.RefreshToken == "" {
			t.Fatal("no refresh token stored")
		}
		t.Logf("login in the browser: %v", time.Since(flowStart).Round(time.Millisecond))

		// Expired locally: refreshed silently through oauth2/token.
		if err := s.Set(ctx, &cscclient.Token{AccessToken: t1.AccessToken, RefreshToken: t1.RefreshToken,
			Expiry: time.Now().Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.cl.ListCredentials(ctx, &csc.CredentialsListRequest{}); err != nil {
			t.Fatalf("credentials/list after expiry: %v", err)
		}
		t2 := stored(t, store, e.oc)
		if t2.AccessToken == t1.AccessToken || t2.RefreshToken == t1.RefreshToken {
			t.Fatal("not refreshed (or the refresh token not rotated)")
		}
		// Refused by the server (revoked at the AS): the 401 invalidates
		// the token and the retry refreshes it.
		if err := e.oc.Revoke(ctx, t2.AccessToken, "access_token"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.cl.ListCredentials(ctx, &csc.CredentialsListRequest{}); err != nil {
			t.Fatalf("credentials/list after revocation: %v", err)
		}
		t3 := stored(t, store, e.oc)
		if t3.AccessToken == t2.AccessToken {
			t.Fatal("not refreshed after a 401")
		}
		if e.opener.count() != n0+1 {
			t.Fatalf("a refresh opened the browser")
		}

		// Logout: revoked at the AS, forgotten here.
		if err := e.oc.Logout(ctx, s); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Get(ctx, e.cl.BaseURL(), user); err == nil {
			t.Error("token still stored after logout")
		}
		if _, err := e.oc.Refresh(ctx, t3.RefreshToken); !errors.Is(err, cscclient.ErrAuthentication) {
			t.Errorf("refresh after logout: %v, want ErrAuthentication", err)
		}
		if r := e.srv.Call(t, "credentials/list", t3.AccessToken, struct{}{}); r.Status != 401 {
			t.Errorf("access token after logout: %d", r.Status)
		}
	})

	t.Run("credential scope with RAR labels", func(t *testing.T) {
		flowStart := time.Now()
		h1, h2 := digest("contract.pdf"), digest("annex.pdf")
		p := e.opener.next(&plan{Plan: chromiumtest.Plan{PIN: pin,
			WantShown: []string{"Contract 2025-17.pdf", "Annex A.pdf", "Sign the contract", base64.StdEncoding.EncodeToString(h1),
				"Contract signing key"}}})
		tok, err := e.oc.AuthorizeCredential(ctx, oauth.CredentialRequest{CredentialID: e.ec, Hashes: [][]byte{h1, h2},
			HashAlgorithmOID: csc.OIDSHA256, Labels: []string{"Contract 2025-17.pdf", "Annex A.pdf"}, Description: "Sign the contract"})
		if err != nil {
			t.Fatal(err)
		}
		out := p.wait(t)
		checkClosed(t, watch.last(t))
		if tok.CredentialID != e.ec || tok.TokenType != "Bearer" || len(tok.AuthorizationDetails) == 0 ||
			!strings.Contains(string(tok.AuthorizationDetails), "Annex A.pdf") {
			t.Fatalf("token %v, details %s", tok, tok.AuthorizationDetails)
		}
		if !strings.Contains(out.Message, "You can close this window") {
			t.Fatalf("browser: %+v", out)
		}
		if u := e.opener.lastURL(); !strings.Contains(u, "request_uri=") || strings.Contains(u, "authorization_details") {
			t.Errorf("not pushed: %s", u)
		}
		e.signAndVerify(t, tok, [][]byte{h1, h2})
		t.Logf("RAR flow (session kept) and signature: %v", time.Since(flowStart).Round(time.Millisecond))
		if !strings.Contains(out.Consent, "Number of signatures\n2") {
			t.Errorf("consent page:\n%s", out.Consent)
		}
	})

	for _, tt := range []struct {
		name   string
		cfg    oauth.Config
		pushed bool
	}{
		{"credential scope with CSC parameters, pushed", oauth.Config{}, true},
		{"credential scope with CSC parameters, in the URL", oauth.Config{DisablePAR: true}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			flowStart := time.Now()
			oc := e.newOAuth(t, tt.cfg)
			h1, h2, h3 := digest(tt.name+"1"), digest(tt.name+"2"), digest(tt.name+"3")
			p := e.opener.next(&plan{Plan: chromiumtest.Plan{PIN: pin, WantShown: []string{"Invoices", base64.StdEncoding.EncodeToString(h3), "(no label)"}}})
			tok, err := oc.AuthorizeCredential(ctx, oauth.CredentialRequest{CredentialID: e.rsa, Hashes: [][]byte{h1, h2, h3},
				HashAlgorithmOID: csc.OIDSHA256})
			if err != nil {
				t.Fatal(err)
			}
			p.wait(t)
			checkClosed(t, watch.last(t))
			u := e.opener.lastURL()
			if pushed := strings.Contains(u, "request_uri="); pushed != tt.pushed {
				t.Errorf("pushed = %v: %s", pushed, u)
			}
			if !tt.pushed && (!strings.Contains(u, "credentialID="+url.QueryEscape(e.rsa)) || !strings.Contains(u, "numSignatures=3") ||
				!strings.Contains(u, base64.RawURLEncoding.EncodeToString(h1))) {
				t.Errorf("URL without the CSC parameters: %s", u)
			}
			e.signAndVerify(t, tok, [][]byte{h1, h2, h3})
			t.Logf("flow and signature: %v", time.Since(flowStart).Round(time.Millisecond))
		})
	}

	t.Run("user denies", func(t *testing.T) {
		h := digest("not this one")
		p := e.opener.next(&plan{Plan: chromiumtest.Plan{Deny: true}})
		tok, err := e.oc.AuthorizeCredential(ctx, oauth.CredentialRequest{CredentialID: e.ec, Hashes: [][]byte{h},
			HashAlgorithmOID: csc.OIDSHA256, Labels: []string{"Unwanted.pdf"}})
		var oe *oauth.Error
		if !errors.Is(err, cscclient.ErrAccessDenied) || !errors.As(err, &oe) || oe.Code != csc.ErrAccessDenied ||
			oe.Endpoint != oauth.EndpointAuthorize || oe.Description == "" || tok != nil {
			t.Fatalf("err = %#v, token %v", err, tok)
		}
		out := p.wait(t)
		if !strings.Contains(out.Message, "declined") {
			t.Errorf("page: %q", out.Message)
		}
		checkClosed(t, watch.last(t))
		t.Logf("denied: %v", err)
	})

	t.Run("forged state", func(t *testing.T) {
		oc := e.newOAuth(t, oauth.Config{DisablePAR: true})
		p := e.opener.next(&plan{Plan: chromiumtest.Plan{PIN: pin}, editURL: func(u *url.URL) {
			q := u.Query()
			q.Set("state", "forged-"+q.Get("state"))
			u.RawQuery = q.Encode()
		}})
		tok, err := oc.AuthorizeCredential(ctx, oauth.CredentialRequest{CredentialID: e.ec, Hashes: [][]byte{digest("x")},
			HashAlgorithmOID: csc.OIDSHA256})
		if !errors.Is(err, oauth.ErrStateMismatch) || tok != nil {
			t.Fatalf("err = %v, token %v", err, tok)
		}
		out := p.wait(t)
		if !strings.Contains(out.Message, "state mismatch") {
			t.Errorf("page: %q", out.Message)
		}
		checkClosed(t, watch.last(t))
	})

	t.Run("timeout", func(t *testing.T) {
		never := oauth.OpenerFunc(func(context.Context, string) error { return nil })
		oc := e.newOAuth(t, oauth.Config{Opener: never, Timeout: 300 * time.Millisecond})
		_, err := oc.AuthorizeCredential(ctx, oauth.CredentialRequest{CredentialID: e.ec, Hashes: [][]byte{digest("x")},
			HashAlgorithmOID: csc.OIDSHA256})
		if !errors.Is(err, oauth.ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
		checkClosed(t, watch.last(t))
	})
	t.Logf("browser tests: %v", time.Since(start).Round(time.Millisecond))
}

// stored returns the token kept in the store for the session.
func stored(t *testing.T, store *tokenstore.Store, oc *oauth.Client) cscclient.Token {
	t.Helper()
	b, err := store.Get(context.Background(), oc.SessionConfig(user, nil).Service, user)
	if err != nil {
		t.Fatalf("stored token: %v", err)
	}
	var tok cscclient.Token
	if err := json.Unmarshal(b, &tok); err != nil {
		t.Fatal(err)
	}
	return tok
}
