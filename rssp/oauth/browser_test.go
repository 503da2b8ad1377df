package oauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/chromiumtest"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/ca"
)

// callback is the client's loopback redirect URI (RFC 8252 §7.3).
type callback struct {
	url string
	got chan url.Values
}

func newCallback(t *testing.T) *callback {
	c := &callback{got: make(chan url.Values, 4)}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		c.got <- r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><html lang="en"><title>Done</title><h1>You can close this window.</h1></html>`)
	}))
	t.Cleanup(ts.Close)
	c.url = ts.URL + "/callback"
	return c
}

func (c *callback) wait(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-c.got:
		return q
	case <-time.After(15 * time.Second):
		t.Fatal("the browser did not reach the redirect URI")
		return nil
	}
}

// screenshot saves the page to $CSCTOKEN_SCREENSHOT_DIR/csctoken-NAME.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("CSCTOKEN_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "csctoken-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// browserFlow is one authorization in the real browser: login (when
// asked), consent with the factors, and the code at the callback.
type browserFlow struct {
	authURL  string
	login    bool
	factors  map[string]string // input id → value
	shotName string            // screenshot of the consent page
}

func (e *env) runBrowser(t *testing.T, ctx context.Context, cb *callback, f browserFlow) url.Values {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(f.authURL)}
	if f.login {
		steps = append(steps, chromedp.WaitVisible(chromedp.ID("username")))
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("login page: %v", err)
		}
		screenshot(t, ctx, "login")
		steps = []chromedp.Action[chromedp.Void]{
			chromedp.SendKeys(chromedp.ID("username"), user),
			chromedp.SendKeys(chromedp.ID("password"), password),
			chromedp.Click(chromedp.ID("sign-in")),
		}
	}
	steps = append(steps, chromedp.WaitVisible(chromedp.ID("approve")))
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("consent page (at %s): %v", loc, err)
	}
	if f.shotName != "" {
		screenshot(t, ctx, f.shotName)
	}
	steps = nil
	for id, v := range f.factors {
		steps = append(steps, chromedp.SendKeys(chromedp.ID(id), v))
	}
	steps = append(steps, chromedp.Click(chromedp.ID("approve")))
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("consent: %v", err)
	}
	return cb.wait(t)
}

// TestBrowser drives the whole authorization code flow in a headless
// Chromium, with golang.org/x/oauth2 as the client: scope credential with
// CSC parameters (login, PIN), scope service (the session skips login),
// and scope credential pushed (PAR) with authorization_details (PIN and
// TOTP); then signHash with the credential token as Bearer and as SAD, the
// signatures verified with the certificate from credentials/info.
func TestBrowser(t *testing.T) {
	e := newEnv(t)
	chromiumtest.Need(t)
	ctx := chromiumtest.Start(t, filepath.Join(e.srv.Dir, ca.TLSCertFile), chromedp.WindowSize(960, 1100))
	cb := newCallback(t)
	conf := &oauth2.Config{
		ClientID:    "desktop",
		RedirectURL: cb.url,
		Endpoint: oauth2.Endpoint{AuthURL: e.issuer + "/oauth2/authorize", TokenURL: e.issuer + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams},
	}
	octx := context.WithValue(context.Background(), oauth2.HTTPClient, e.srv.Client)
	exchange := func(t *testing.T, q url.Values, state, verifier string) *oauth2.Token {
		t.Helper()
		if q.Get("state") != state || q.Get("iss") != e.issuer || q.Get("error") != "" {
			t.Fatalf("callback %v", q)
		}
		tok, err := conf.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		return tok
	}

	t.Run("credential scope with CSC parameters", func(t *testing.T) {
		start := time.Now()
		h1, h2 := digest("browser 1"), digest("browser 2")
		verifier := oauth2.GenerateVerifier()
		authURL := conf.AuthCodeURL("s1", oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("scope", "credential"), oauth2.SetAuthURLParam("credentialID", e.scal2),
			oauth2.SetAuthURLParam("numSignatures", "2"), oauth2.SetAuthURLParam("hashes", b64url(h1)+","+b64url(h2)),
			oauth2.SetAuthURLParam("hashAlgorithmOID", csc.OIDSHA256))
		q := e.runBrowser(t, ctx, cb, browserFlow{authURL: authURL, login: true, factors: map[string]string{"pin": pin}})
		tok := exchange(t, q, "s1", verifier)
		if tok.Extra("credentialID") != e.scal2 || tok.RefreshToken != "" || tok.TokenType != "Bearer" {
			t.Fatalf("token: credentialID %v refresh %q type %q", tok.Extra("credentialID"), tok.RefreshToken, tok.TokenType)
		}
		// The credential token as the Bearer token, no SAD.
		r := rssptest.Must(t, e.signHash(t, tok.AccessToken, "", e.scal2, h1, h2))
		var sh csc.SignHashResponse
		r.Decode(t, &sh)
		e.verify(t, tok.AccessToken, e.scal2, [][]byte{h1, h2}, sh.Signatures)
		t.Logf("credential flow with login: %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("service scope", func(t *testing.T) {
		start := time.Now()
		verifier := oauth2.GenerateVerifier()
		authURL := conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("scope", "service"))
		q := e.runBrowser(t, ctx, cb, browserFlow{authURL: authURL})
		tok := exchange(t, q, "s2", verifier)
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token for scope service")
		}
		var list csc.CredentialsListResponse
		rssptest.Must(t, e.srv.Call(t, "credentials/list", tok.AccessToken, struct{}{})).Decode(t, &list)
		if len(list.CredentialIDs) != 2 {
			t.Errorf("credentials/list: %v", list.CredentialIDs)
		}
		// x/oauth2 refreshes with the rotated refresh token.
		old := *tok
		old.Expiry = time.Now().Add(-time.Hour)
		fresh, err := conf.TokenSource(octx, &old).Token()
		if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken {
			t.Fatalf("refresh: %v", err)
		}
		rssptest.Must(t, e.srv.Call(t, "credentials/list", fresh.AccessToken, struct{}{}))
		t.Logf("service flow (session kept): %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("credential scope pushed with authorization_details", func(t *testing.T) {
		start := time.Now()
		h1, h2 := digest("invoice 1"), digest("invoice 2")
		verifier := oauth2.GenerateVerifier()
		details := `[{"type":"credential","credentialID":"` + e.otp + `","hashAlgorithmOID":"` + csc.OIDSHA256 +
			`","documentDigests":[{"hash":"` + csc.Bytes(h1).String() + `","label":"Invoice 2025-0117.pdf"},` +
			`{"hash":"` + csc.Bytes(h2).String() + `","label":"Delivery note 88.pdf"}]}]`
		pushed := e.postForm(t, "pushed_authorize", "", url.Values{"client_id": {"desktop"}, "response_type": {"code"},
			"redirect_uri": {cb.url}, "state": {"s3"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
			"code_challenge_method": {"S256"}, "authorization_details": {details}})
		if pushed.status != 201 {
			t.Fatalf("push: %d %s %s", pushed.status, pushed.Error, pushed.Desc)
		}
		authURL := e.issuer + "/oauth2/authorize?" + url.Values{"client_id": {"desktop"}, "request_uri": {pushed.RequestURI}}.Encode()
		key, err := otp.NewKeyFromURL(e.otpURI)
		if err != nil {
			t.Fatal(err)
		}
		code, err := totp.GenerateCode(key.Secret(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		q := e.runBrowser(t, ctx, cb, browserFlow{authURL: authURL, factors: map[string]string{"pin": pin, "otp": code}, shotName: "consent"})
		tok := exchange(t, q, "s3", verifier)
		if tok.Extra("credentialID") != e.otp {
			t.Fatalf("credentialID %v", tok.Extra("credentialID"))
		}
		if d, ok := tok.Extra("authorization_details").([]any); !ok || len(d) != 1 ||
			!strings.Contains(fmt.Sprint(d[0]), e.otp) {
			t.Errorf("authorization_details %v", tok.Extra("authorization_details"))
		}
		// The credential token as SAD, with a service token as Bearer.
		service := e.srv.Login(t, user, password)
		r := rssptest.Must(t, e.signHash(t, service, tok.AccessToken, e.otp, h2, h1))
		var sh csc.SignHashResponse
		r.Decode(t, &sh)
		e.verify(t, tok.AccessToken, e.otp, [][]byte{h2, h1}, sh.Signatures)
		t.Logf("pushed RAR flow (session kept): %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("abandoned while the consent page is open", func(t *testing.T) {
		// The page polls oauth2/status (its script allowed by the CSP's
		// hash): once the program that pushed the request abandons it,
		// the open page says so by itself, and the Sign button is gone.
		h := digest("abandoned in the browser")
		pushed := e.postForm(t, "pushed_authorize", "", url.Values{"client_id": {"desktop"}, "response_type": {"code"},
			"redirect_uri": {cb.url}, "state": {"s4"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
			"code_challenge_method": {"S256"}, "scope": {"credential"}, "credentialID": {e.scal2},
			"hashes": {b64url(h)}, "hashAlgorithmOID": {csc.OIDSHA256}})
		if pushed.status != 201 {
			t.Fatalf("push: %d %s %s", pushed.status, pushed.Error, pushed.Desc)
		}
		authURL := e.issuer + "/oauth2/authorize?" + url.Values{"client_id": {"desktop"}, "request_uri": {pushed.RequestURI}}.Encode()
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(bctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("approve"))); err != nil {
			t.Fatalf("consent page: %v", err)
		}
		if st, code := e.abandonCall(t, e.srv.Login(t, user, password), pushed.RequestURI); st != http.StatusNoContent {
			t.Fatalf("abandon: %d %s", st, code)
		}
		start := time.Now()
		if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.ID("abandoned"))); err != nil {
			screenshot(t, bctx, "abandoned-failed")
			t.Fatalf("the open consent page did not say it was abandoned: %v", err)
		}
		took := time.Since(start)
		text, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("abandoned")))
		if err != nil || text != authserver.AbandonedMessage {
			t.Errorf("the page says %q (%v)", text, err)
		}
		buttons, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#approve").length`))
		if err != nil || buttons != 0 {
			t.Errorf("approve buttons left: %d (%v)", buttons, err)
		}
		screenshot(t, bctx, "abandoned")
		t.Logf("the open consent page said it was abandoned %v after the call", took.Round(time.Millisecond))
	})
}
