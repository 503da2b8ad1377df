package oauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user     = "alice"
	password = "correct horse battery"
	pin      = "123456"
)

// env is a running RSSP with alice, her credentials and three clients.
type env struct {
	srv    *rssptest.Server
	issuer string       // of the authorization server under test
	client *http.Client // that trusts it
	// scal2 is an oauth2code credential (ec-p256, PIN, SCAL 2, multisign 5).
	scal2 string
	// otp is an explicit credential with PIN and TOTP (rsa-2048, SCAL 1,
	// multisign 3); otpURI is its otpauth:// URI.
	otp, otpURI string
	// portalSecret is the secret of the confidential client "portal".
	portalSecret string
}

// Clients: "desktop" (public, loopback), "portal" (confidential, acts for
// alice), "other" (public).
const (
	desktopRedirect = "http://127.0.0.1/callback"
	portalRedirect  = "https://portal.example/cb"
	otherRedirect   = "http://127.0.0.1/other"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	e := &env{srv: srv, issuer: srv.App.OAuth.BaseURL(), client: srv.Client}
	e.scal2, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, SCAL: 2,
		Multisign: 5, AuthMode: csc.AuthModeOAuth2Code, Description: "Contract signing key"})
	e.otp, e.otpURI = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.RSA2048, PIN: pin,
		OTP: "totp", Multisign: 3, Description: "Invoices"})
	ctx := context.Background()
	svc := srv.App.Service
	if _, _, err := svc.AddOAuthClient(ctx, service.ClientSpec{ID: "desktop", Name: "Desktop signer",
		RedirectURIs: []string{desktopRedirect}, Public: true}); err != nil {
		t.Fatal(err)
	}
	var err error
	if _, e.portalSecret, err = svc.AddOAuthClient(ctx, service.ClientSpec{ID: "portal", Name: "Signing portal",
		RedirectURIs: []string{portalRedirect}, User: user}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.AddOAuthClient(ctx, service.ClientSpec{ID: "other", RedirectURIs: []string{otherRedirect}, Public: true}); err != nil {
		t.Fatal(err)
	}
	return e
}

// pkce returns a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	v := oauth2.GenerateVerifier()
	return v, oauth2.S256ChallengeFromVerifier(v)
}

func digest(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// browser is a cookie-keeping HTTP client that fills the pages' forms the
// way a browser does, without following redirects.
type browser struct {
	t      *testing.T
	c      *http.Client
	origin string
}

func (e *env) browser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *e.client
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, c: &c, origin: e.issuer}
}

// page is an answer: status, Location resolved, body.
type page struct {
	status   int
	location *url.URL
	body     string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	p := page{status: resp.StatusCode, body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" {
		u, err := req.URL.Parse(loc)
		if err != nil {
			b.t.Fatalf("Location %q: %v", loc, err)
		}
		p.location = u
	}
	return p
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.origin)
	return b.do(req)
}

var (
	csrfRE    = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	requestRE = regexp.MustCompile(`name="request" value="([^"]*)"`)
)

// form returns the hidden fields of a page's form.
func (p page) form(t *testing.T) url.Values {
	t.Helper()
	c, r := csrfRE.FindStringSubmatch(p.body), requestRE.FindStringSubmatch(p.body)
	if c == nil || r == nil {
		t.Fatalf("no form on the page (status %d):\n%s", p.status, p.body)
	}
	return url.Values{"csrf": {c[1]}, "request": {r[1]}}
}

// toConsent follows an authorize URL through the login page to the
// consent page and returns it.
func (b *browser) toConsent(authURL string) (page, string) {
	b.t.Helper()
	p := b.get(authURL)
	if p.status != http.StatusFound || p.location == nil {
		b.t.Fatalf("authorize: status %d, want 302:\n%s", p.status, p.body)
	}
	if strings.HasSuffix(p.location.Path, "/login") {
		login := b.get(p.location.String())
		if login.status != http.StatusOK {
			b.t.Fatalf("login page: %d\n%s", login.status, login.body)
		}
		f := login.form(b.t)
		f.Set("username", user)
		f.Set("password", password)
		p = b.post(p.location.String(), f)
		if p.status != http.StatusSeeOther || p.location == nil {
			b.t.Fatalf("login: status %d, want 303:\n%s", p.status, p.body)
		}
	}
	consentURL := p.location.String()
	c := b.get(consentURL)
	if c.status != http.StatusOK {
		b.t.Fatalf("consent page: %d\n%s", c.status, c.body)
	}
	return c, consentURL
}

// authorize runs authorize → login → consent with action and the factors
// and returns the query of the redirect to the client.
func (b *browser) authorize(authURL, action string, factors url.Values) url.Values {
	b.t.Helper()
	c, consentURL := b.toConsent(authURL)
	f := c.form(b.t)
	f.Set("action", action)
	for k, v := range factors {
		f[k] = v
	}
	p := b.post(consentURL, f)
	if p.status != http.StatusSeeOther || p.location == nil {
		b.t.Fatalf("consent: status %d, want 303:\n%s", p.status, p.body)
	}
	return p.location.Query()
}

// authURL builds an authorization URL for client with params.
func (e *env) authURL(client, redirect, challenge string, params url.Values) string {
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect},
		"state": {"st-" + client}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range params {
		q[k] = v
	}
	return e.issuer + "/oauth2/authorize?" + q.Encode()
}

// tokenResult is the answer of oauth2/token or an error body.
type tokenResult struct {
	status  int
	header  http.Header
	Access  string          `json:"access_token"`
	Type    string          `json:"token_type"`
	Expires int64           `json:"expires_in"`
	Refresh string          `json:"refresh_token"`
	Scope   string          `json:"scope"`
	CredID  string          `json:"credentialID"`
	Details json.RawMessage `json:"authorization_details"`
	// RequestURI is the answer of oauth2/pushed_authorize.
	RequestURI string `json:"request_uri"`
	Error      string `json:"error"`
	Desc       string `json:"error_description"`
}

// postForm posts to an authorization server endpoint, with HTTP Basic
// when basic is "id:secret".
func (e *env) postForm(t *testing.T, endpoint, basic string, form url.Values) tokenResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/"+endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id, sec, ok := strings.Cut(basic, ":"); ok {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(sec))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := tokenResult{status: resp.StatusCode, header: resp.Header}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("%s: %d %q: %v", endpoint, resp.StatusCode, body, err)
		}
	}
	return r
}

// exchange redeems a code of the public client desktop.
func (e *env) exchange(t *testing.T, code, verifier string) tokenResult {
	t.Helper()
	return e.postForm(t, "token", "", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {desktopRedirect}, "client_id": {"desktop"}, "code_verifier": {verifier}})
}

// signHash calls signatures/signHash over SHA-256 digests with the
// credential's algorithm and returns the answer.
func (e *env) signHash(t *testing.T, bearer, sad, credID string, hashes ...[]byte) rssptest.Response {
	t.Helper()
	algo := csc.OIDECDSAWithSHA256
	if credID == e.otp {
		algo = csc.OIDSHA256WithRSA
	}
	return e.srv.Call(t, "signatures/signHash", bearer, csc.SignHashRequest{CredentialID: credID, SAD: sad,
		Hashes: csc.BytesList(hashes), HashAlgorithmOID: csc.OIDSHA256, SignAlgo: algo})
}

// verify checks signatures over SHA-256 digests with the certificate that
// credentials/info returns for the token.
func (e *env) verify(t *testing.T, token, credID string, hashes [][]byte, sigs []csc.Bytes) {
	t.Helper()
	var info csc.CredentialInfo
	rssptest.Must(t, e.srv.Call(t, "credentials/info", token, csc.CredentialsInfoRequest{CredentialID: credID, Certificates: "chain"})).Decode(t, &info)
	if info.Cert == nil || len(info.Cert.Certificates) == 0 {
		t.Fatal("credentials/info returned no certificate")
	}
	cert, err := x509.ParseCertificate(info.Cert.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != len(hashes) {
		t.Fatalf("%d signatures for %d hashes", len(sigs), len(hashes))
	}
	for i, h := range hashes {
		switch pub := cert.PublicKey.(type) {
		case *ecdsa.PublicKey:
			if !ecdsa.VerifyASN1(pub, h, sigs[i]) {
				t.Fatalf("signature %d does not verify", i)
			}
		case *rsa.PublicKey:
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h, sigs[i]); err != nil {
				t.Fatalf("signature %d: %v", i, err)
			}
		default:
			t.Fatalf("key %T", pub)
		}
	}
}

// wantRedirectError checks an error redirect to the client.
func wantRedirectError(t *testing.T, q url.Values, code, state string) {
	t.Helper()
	if q.Get("error") != code {
		t.Fatalf("redirect error = %q (%s), want %q", q.Get("error"), q.Get("error_description"), code)
	}
	if q.Get("state") != state {
		t.Errorf("state = %q, want %q", q.Get("state"), state)
	}
	if q.Get("code") != "" {
		t.Errorf("error redirect carries a code")
	}
}
