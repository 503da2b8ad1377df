package oauth_test

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/oauth"
	"github.com/csctoken/csctoken/rssp/service"
)

func TestMetadataAndInfo(t *testing.T) {
	e := newEnv(t)
	resp, err := e.client.Get(e.issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metadata: %d %v", resp.StatusCode, err)
	}
	for k, want := range map[string]any{
		"issuer":                                e.issuer,
		"authorization_endpoint":                e.issuer + "/oauth2/authorize",
		"token_endpoint":                        e.issuer + "/oauth2/token",
		"pushed_authorization_request_endpoint": e.issuer + "/oauth2/pushed_authorize",
		"revocation_endpoint":                   e.issuer + "/oauth2/revoke",
	} {
		if md[k] != want {
			t.Errorf("%s = %v, want %v", k, md[k], want)
		}
	}
	if m, _ := json.Marshal(md["code_challenge_methods_supported"]); string(m) != `["S256"]` {
		t.Errorf("code_challenge_methods_supported = %s", m)
	}
	var info csc.InfoResponse
	rssptest.Must(t, e.srv.Call(t, "info", "", struct{}{})).Decode(t, &info)
	if info.OAuth2 != e.issuer || strings.Join(info.AuthType, " ") != "basic oauth2code oauth2client" {
		t.Errorf("info: oauth2 %q authType %v", info.OAuth2, info.AuthType)
	}
	if !strings.HasPrefix(e.issuer, "https://127.0.0.1:") || strings.HasSuffix(e.issuer, ":0") {
		t.Errorf("issuer %q: want the listening address", e.issuer)
	}
}

// TestAuthorizeBadInput covers the authorization endpoint's refusals: to an
// error page while client or redirect URI are not known good, to the
// client's redirect URI with state afterwards.
func TestAuthorizeBadInput(t *testing.T) {
	e := newEnv(t)
	_, challenge := pkce()
	cred := url.Values{"scope": {"credential"}, "credentialID": {e.scal2}, "numSignatures": {"1"},
		"hashes": {b64url(digest("a"))}, "hashAlgorithmOID": {csc.OIDSHA256}}
	with := func(base url.Values, kv ...string) url.Values {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<del>" {
				q.Del(kv[i])
			} else {
				q.Set(kv[i], kv[i+1])
			}
		}
		return q
	}
	rar := func(d string) url.Values { return url.Values{"authorization_details": {d}} }
	tests := []struct {
		name     string
		client   string
		redirect string
		params   url.Values
		page     string // error code shown on the page (no redirect)
		redirErr string // error code sent to the redirect URI
	}{
		{"ok loopback any port", "desktop", "http://127.0.0.1:49152/callback", nil, "", ""},
		{"ok loopback no port", "desktop", "http://127.0.0.1/callback", nil, "", ""},
		{"ok credential scope", "desktop", desktopRedirect, cred, "", ""},
		{"ok redirect omitted with one registered", "desktop", "", nil, "", ""},
		{"fail unknown client", "nobody", desktopRedirect, nil, "invalid_client", ""},
		{"fail missing client", "", desktopRedirect, nil, "invalid_request", ""},
		{"fail redirect mismatch", "desktop", "http://127.0.0.1:8080/elsewhere", nil, "invalid_request", ""},
		{"fail redirect other host", "desktop", "http://localhost:8080/callback", nil, "invalid_request", ""},
		{"fail redirect https for loopback", "desktop", "https://127.0.0.1:8080/callback", nil, "invalid_request", ""},
		{"fail redirect with fragment", "desktop", "http://127.0.0.1:8080/callback#x", nil, "invalid_request", ""},
		{"fail redirect of another client", "desktop", otherRedirect, nil, "invalid_request", ""},
		{"fail https redirect any port", "portal", "https://portal.example:8443/cb", nil, "invalid_request", ""},
		{"fail missing code_challenge", "desktop", desktopRedirect, url.Values{"code_challenge": {""}}, "", "invalid_request"},
		{"fail plain method", "desktop", desktopRedirect, url.Values{"code_challenge_method": {"plain"}}, "", "invalid_request"},
		{"fail method omitted (plain)", "desktop", desktopRedirect, url.Values{"code_challenge_method": {""}}, "", "invalid_request"},
		{"fail malformed challenge", "desktop", desktopRedirect, url.Values{"code_challenge": {"short"}}, "", "invalid_request"},
		{"fail response_type token", "desktop", desktopRedirect, url.Values{"response_type": {"token"}}, "", "unsupported_response_type"},
		{"fail scope unknown", "desktop", desktopRedirect, url.Values{"scope": {"openid"}}, "", "invalid_scope"},
		{"fail both scopes", "desktop", desktopRedirect, url.Values{"scope": {"service credential"}}, "", "invalid_scope"},
		{"fail repeated scope", "desktop", desktopRedirect, url.Values{"scope": {"service", "service"}}, "", "invalid_request"},
		{"fail credential without credentialID", "desktop", desktopRedirect, with(cred, "credentialID", "<del>"), "", "invalid_request"},
		{"fail signatureQualifier", "desktop", desktopRedirect, with(cred, "credentialID", "<del>", "signatureQualifier", "eu_eidas_qes"), "", "invalid_request"},
		{"fail unknown signatureQualifier", "desktop", desktopRedirect, with(cred, "signatureQualifier", "eu_eidas_best"), "", "invalid_request"},
		{"fail hashes without algorithm", "desktop", desktopRedirect, with(cred, "hashAlgorithmOID", "<del>"), "", "invalid_request"},
		{"fail SHA-1", "desktop", desktopRedirect, with(cred, "hashAlgorithmOID", "1.3.14.3.2.26"), "", "invalid_request"},
		{"fail hash of wrong length", "desktop", desktopRedirect, with(cred, "hashes", b64url([]byte("short"))), "", "invalid_request"},
		{"fail hash not base64", "desktop", desktopRedirect, with(cred, "hashes", "%%%"), "", "invalid_request"},
		{"fail numSignatures mismatch", "desktop", desktopRedirect, with(cred, "numSignatures", "2"), "", "invalid_request"},
		{"fail numSignatures zero", "desktop", desktopRedirect, with(cred, "numSignatures", "0", "hashes", "<del>", "hashAlgorithmOID", "<del>"), "", "invalid_request"},
		{"fail credential params with scope service", "desktop", desktopRedirect, with(cred, "scope", "service"), "", "invalid_request"},
		{"fail rar unknown type", "desktop", desktopRedirect, rar(`[{"type":"payment","credentialID":"x"}]`), "", "invalid_authorization_details"},
		{"fail rar not an array", "desktop", desktopRedirect, rar(`{"type":"credential"}`), "", "invalid_authorization_details"},
		{"fail rar two entries", "desktop", desktopRedirect, rar(`[{"type":"credential"},{"type":"credential"}]`), "", "invalid_authorization_details"},
		{"fail rar without digests", "desktop", desktopRedirect, rar(`[{"type":"credential","credentialID":"x","hashAlgorithmOID":"2.16.840.1.101.3.4.2.1"}]`), "", "invalid_authorization_details"},
		{"fail rar repeated member", "desktop", desktopRedirect, rar(`[{"type":"credential","type":"credential"}]`), "", "invalid_authorization_details"},
		{"fail rar and query parameters", "desktop", desktopRedirect, with(cred, "authorization_details",
			`[{"type":"credential","credentialID":"x","hashAlgorithmOID":"2.16.840.1.101.3.4.2.1","documentDigests":[{"hash":"`+b64url(digest("a"))+`"}]}]`), "", "invalid_request"},
		{"fail rar with scope service", "desktop", desktopRedirect, url.Values{"scope": {"service"}, "authorization_details": {
			`[{"type":"credential","credentialID":"x","hashAlgorithmOID":"2.16.840.1.101.3.4.2.1","documentDigests":[{"hash":"` + b64url(digest("a")) + `"}]}]`}}, "", "invalid_request"},
		{"fail request object", "desktop", desktopRedirect, url.Values{"request": {"eyJ.x.y"}}, "", "invalid_request"},
		{"fail unknown request_uri", "desktop", desktopRedirect, url.Values{"request_uri": {service.RequestURIPrefix + "nope"}}, "invalid_request_uri", ""},
		{"fail foreign request_uri", "desktop", desktopRedirect, url.Values{"request_uri": {"https://example.com/r"}}, "invalid_request_uri", ""},
	}
	b := e.browser(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := e.authURL(tc.client, tc.redirect, challenge, tc.params)
			if tc.redirect == "" {
				u = strings.Replace(u, "redirect_uri=&", "", 1)
			}
			if tc.client == "" {
				u = strings.Replace(u, "client_id=&", "", 1)
			}
			p := b.get(u)
			switch {
			case tc.page != "":
				if p.status < 400 || !strings.Contains(p.body, "<code>"+tc.page+"</code>") {
					t.Fatalf("status %d, want an error page with %s:\n%s", p.status, tc.page, p.body)
				}
			case tc.redirErr != "":
				if p.status != http.StatusFound || p.location == nil || p.location.Host != "127.0.0.1" {
					t.Fatalf("status %d location %v, want a redirect to the client", p.status, p.location)
				}
				q := p.location.Query()
				wantRedirectError(t, q, tc.redirErr, "st-"+tc.client)
				if q.Get("iss") != e.issuer {
					t.Errorf("iss = %q, want %q", q.Get("iss"), e.issuer)
				}
			default:
				if p.status != http.StatusFound || p.location == nil || !strings.HasSuffix(p.location.Path, "/oauth2/login") {
					t.Fatalf("status %d location %v, want the login page:\n%s", p.status, p.location, p.body)
				}
			}
		})
	}
}

// codeFor runs the form flow for the desktop client and returns the code
// and the verifier.
func (e *env) codeFor(t *testing.T, b *browser, params url.Values, factors url.Values) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkce()
	q := b.authorize(e.authURL("desktop", desktopRedirect, challenge, params), "approve", factors)
	if q.Get("code") == "" || q.Get("state") != "st-desktop" || q.Get("iss") != e.issuer {
		t.Fatalf("redirect %v: want code, state and iss", q)
	}
	return q.Get("code"), verifier
}

func TestTokenBadInput(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	tokenForm := func(code, verifier string, kv ...string) url.Values {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {desktopRedirect},
			"client_id": {"desktop"}, "code_verifier": {verifier}}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<del>" {
				f.Del(kv[i])
			} else {
				f.Set(kv[i], kv[i+1])
			}
		}
		return f
	}
	otherVerifier, _ := pkce()
	tests := []struct {
		name       string
		basic      string
		edit       []string
		wantStatus int
		wantErr    string
	}{
		{"fail wrong verifier", "", []string{"code_verifier", otherVerifier}, 400, "invalid_grant"},
		{"fail missing verifier", "", []string{"code_verifier", "<del>"}, 400, "invalid_request"},
		{"fail short verifier", "", []string{"code_verifier", "abc"}, 400, "invalid_request"},
		{"fail redirect mismatch", "", []string{"redirect_uri", "http://127.0.0.1:9/callback"}, 400, "invalid_grant"},
		{"fail redirect omitted", "", []string{"redirect_uri", "<del>"}, 400, "invalid_grant"},
		{"fail unknown client", "", []string{"client_id", "nobody"}, 401, "invalid_client"},
		{"fail missing client", "", []string{"client_id", "<del>"}, 401, "invalid_client"},
		{"fail other client", "", []string{"client_id", "other"}, 400, "invalid_grant"},
		{"fail public client with secret", "", []string{"client_secret", "s3cr3t-s3cr3t-s3cr3t"}, 401, "invalid_client"},
		{"fail confidential client bad secret", "portal:wrong-secret-wrong", []string{"client_id", "<del>"}, 401, "invalid_client"},
		{"fail unknown code", "", []string{"code", "nope"}, 400, "invalid_grant"},
		{"fail missing code", "", []string{"code", "<del>"}, 400, "invalid_request"},
		{"fail missing grant_type", "", []string{"grant_type", "<del>"}, 400, "invalid_request"},
		{"fail unsupported grant_type", "", []string{"grant_type", "password"}, 400, "unsupported_grant_type"},
		{"fail implicit-style grant", "", []string{"grant_type", "token"}, 400, "unsupported_grant_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, verifier := e.codeFor(t, b, nil, nil)
			r := e.postForm(t, "token", tc.basic, tokenForm(code, verifier, tc.edit...))
			if r.status != tc.wantStatus || r.Error != tc.wantErr || r.Access != "" {
				t.Fatalf("status %d error %q (%s), want %d %q", r.status, r.Error, r.Desc, tc.wantStatus, tc.wantErr)
			}
			if tc.basic != "" && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 to HTTP Basic without WWW-Authenticate")
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
			}
		})
	}
	t.Run("fail wrong content type", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("fail repeated parameter", func(t *testing.T) {
		code, verifier := e.codeFor(t, b, nil, nil)
		f := tokenForm(code, verifier)
		f.Add("code", code)
		if r := e.postForm(t, "token", "", f); r.Error != "invalid_request" {
			t.Errorf("error %q", r.Error)
		}
	})
}

// TestCodeSingleUse: a code serves once; the second use is refused and
// revokes what the first issued.
func TestCodeSingleUse(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	for _, scope := range []string{"service", "credential"} {
		t.Run(scope, func(t *testing.T) {
			params, factors := url.Values{"scope": {"service"}}, url.Values(nil)
			h := digest("reuse " + scope)
			if scope == "credential" {
				params = url.Values{"scope": {"credential"}, "credentialID": {e.scal2}, "numSignatures": {"1"},
					"hashes": {b64url(h)}, "hashAlgorithmOID": {csc.OIDSHA256}}
				factors = url.Values{"pin": {pin}}
			}
			code, verifier := e.codeFor(t, b, params, factors)
			first := e.exchange(t, code, verifier)
			if first.status != 200 || first.Access == "" {
				t.Fatalf("first exchange: %d %s %s", first.status, first.Error, first.Desc)
			}
			second := e.exchange(t, code, verifier)
			if second.status != 400 || second.Error != "invalid_grant" {
				t.Fatalf("second exchange: %d %q, want 400 invalid_grant", second.status, second.Error)
			}
			if scope == "service" {
				r := e.srv.Call(t, "credentials/list", first.Access, struct{}{})
				if r.Status != 401 || r.Error().Code != csc.ErrExpiredToken {
					t.Errorf("credentials/list with the revoked token: %d %s", r.Status, r.Body)
				}
				ref := e.postForm(t, "token", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.Refresh}, "client_id": {"desktop"}})
				if ref.Error != "invalid_grant" {
					t.Errorf("refresh with the revoked family: %d %q", ref.status, ref.Error)
				}
				return
			}
			service := e.srv.Login(t, user, password)
			for _, c := range []struct{ bearer, sad string }{{first.Access, ""}, {service, first.Access}} {
				if r := e.signHash(t, c.bearer, c.sad, e.scal2, h); r.Status == 200 {
					t.Errorf("signHash with the revoked credential token (SAD %v) succeeded", c.sad != "")
				}
			}
		})
	}
}

// TestPagesBadInput covers CSRF, the origin check, the login failure, the
// consent replay and deny.
func TestPagesBadInput(t *testing.T) {
	e := newEnv(t)
	_, challenge := pkce()
	authURL := e.authURL("desktop", desktopRedirect, challenge, nil)
	t.Run("login", func(t *testing.T) {
		tests := []struct {
			name   string
			edit   func(f url.Values, req *http.Request)
			status int
			want   string
		}{
			{"fail csrf missing", func(f url.Values, _ *http.Request) { f.Del("csrf") }, 403, "access_denied"},
			{"fail csrf wrong", func(f url.Values, _ *http.Request) { f.Set("csrf", "x"+f.Get("csrf")[1:]) }, 403, "access_denied"},
			{"fail csrf repeated", func(f url.Values, _ *http.Request) { f.Add("csrf", f.Get("csrf")) }, 403, "access_denied"},
			{"fail foreign origin", func(_ url.Values, r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, 403, "access_denied"},
			{"fail null origin", func(_ url.Values, r *http.Request) { r.Header.Set("Origin", "null") }, 403, "access_denied"},
			{"fail no cookie", func(_ url.Values, r *http.Request) { r.Header.Set("X-No-Cookie", "1") }, 403, "access_denied"},
			{"fail wrong password", func(f url.Values, _ *http.Request) { f.Set("password", "wrong") }, 400, "Invalid username or password"},
			{"fail unknown user", func(f url.Values, _ *http.Request) { f.Set("username", "mallory") }, 400, "Invalid username or password"},
			{"fail unknown request", func(f url.Values, _ *http.Request) { f.Set("request", "nope") }, 400, "invalid_request"},
			{"ok", func(url.Values, *http.Request) {}, 303, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b := e.browser(t)
				p := b.get(authURL)
				login := b.get(p.location.String())
				f := login.form(t)
				f.Set("username", user)
				f.Set("password", password)
				req, _ := http.NewRequest(http.MethodPost, p.location.String(), nil)
				req.Header.Set("Origin", e.issuer)
				tc.edit(f, req)
				body := f.Encode()
				req, _ = http.NewRequest(http.MethodPost, p.location.String(), strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", e.issuer)
				tc.edit(f, req)
				c := b.c
				if req.Header.Get("X-No-Cookie") != "" {
					cc := *b.c
					cc.Jar = nil
					c = &cc
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var buf bytes.Buffer
				_, _ = buf.ReadFrom(resp.Body)
				if resp.StatusCode != tc.status || !strings.Contains(buf.String(), tc.want) {
					t.Fatalf("status %d, want %d with %q:\n%s", resp.StatusCode, tc.status, tc.want, buf.String())
				}
				if tc.status == 303 && !strings.Contains(resp.Header.Get("Set-Cookie"), "HttpOnly") {
					t.Errorf("login cookie %q", resp.Header.Get("Set-Cookie"))
				}
			})
		}
	})
	t.Run("cookie attributes", func(t *testing.T) {
		b := e.browser(t)
		p := b.get(authURL)
		resp, err := b.c.Get(p.location.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c := resp.Header.Get("Set-Cookie")
		for _, want := range []string{"__Host-rssp_oauth=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
			if !strings.Contains(c, want) {
				t.Errorf("Set-Cookie %q lacks %q", c, want)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("headers: CSP %q", csp)
		}
	})
	t.Run("fail consent csrf wrong", func(t *testing.T) {
		b := e.browser(t)
		c, consentURL := b.toConsent(authURL)
		f := c.form(t)
		f.Set("csrf", "forged")
		f.Set("action", "approve")
		if p := b.post(consentURL, f); p.status != 403 || p.location != nil {
			t.Fatalf("status %d location %v, want 403", p.status, p.location)
		}
		// The request is still pending: the real form works.
		f = c.form(t)
		f.Set("action", "approve")
		if p := b.post(consentURL, f); p.status != 303 || p.location.Query().Get("code") == "" {
			t.Fatalf("status %d, want a code", p.status)
		}
	})
	t.Run("fail consent of another session", func(t *testing.T) {
		b1, b2 := e.browser(t), e.browser(t)
		c, consentURL := b1.toConsent(authURL)
		_, _ = b2.toConsent(authURL)
		f := c.form(t) // b1's CSRF token posted with b2's cookie
		f.Set("action", "approve")
		if p := b2.post(consentURL, f); p.status != 403 {
			t.Fatalf("status %d, want 403", p.status)
		}
	})
	t.Run("fail consent replay", func(t *testing.T) {
		b := e.browser(t)
		c, consentURL := b.toConsent(authURL)
		f := c.form(t)
		f.Set("action", "approve")
		first := b.post(consentURL, f)
		if first.status != 303 || first.location.Query().Get("code") == "" {
			t.Fatalf("first submission: %d", first.status)
		}
		second := b.post(consentURL, f)
		if second.status != 400 || second.location != nil || !strings.Contains(second.body, "already answered") {
			t.Fatalf("second submission: status %d location %v:\n%s", second.status, second.location, second.body)
		}
		f.Set("action", "deny")
		if third := b.post(consentURL, f); third.status != 400 || third.location != nil {
			t.Fatalf("deny after approval: status %d location %v", third.status, third.location)
		}
	})
	t.Run("deny", func(t *testing.T) {
		b := e.browser(t)
		q := b.authorize(authURL, "deny", nil)
		wantRedirectError(t, q, "access_denied", "st-desktop")
	})
	t.Run("fail consent without login", func(t *testing.T) {
		b := e.browser(t)
		p := b.get(authURL)
		consent := strings.Replace(p.location.String(), "/login?", "/consent?", 1)
		if c := b.get(consent); c.status != 302 || !strings.HasSuffix(c.location.Path, "/login") {
			t.Fatalf("consent without login: %d %v", c.status, c.location)
		}
	})
}

// TestConsentFactors: a wrong PIN keeps the request and counts; the right
// one (and the OTP) gives the code; a credential of another kind of
// request is refused back to the client.
func TestConsentFactors(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	verifier, challenge := pkce()
	h := digest("factors")
	authURL := e.authURL("desktop", desktopRedirect, challenge, url.Values{"scope": {"credential"},
		"credentialID": {e.otp}, "numSignatures": {"1"}, "hashes": {b64url(h)}, "hashAlgorithmOID": {csc.OIDSHA256}})
	c, consentURL := b.toConsent(authURL)
	for _, want := range []string{`id="pin"`, `id="otp"`, "Invoices", "CN=" + user, csc.Bytes(h).String()} {
		if !strings.Contains(html.UnescapeString(c.body), want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	key, err := otp.NewKeyFromURL(e.otpURI)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(key.Secret(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := c.form(t)
	f.Set("action", "approve")
	f.Set("pin", "000000")
	f.Set("otp", code)
	p := b.post(consentURL, f)
	if p.status != 400 || !strings.Contains(p.body, "Wrong PIN: 4 attempts left") || !strings.Contains(p.body, `role="alert"`) {
		t.Fatalf("wrong PIN: status %d:\n%s", p.status, p.body)
	}
	f.Set("pin", pin)
	p = b.post(consentURL, f)
	if p.status != 303 || p.location.Query().Get("code") == "" {
		t.Fatalf("right PIN and OTP: status %d:\n%s", p.status, p.body)
	}
	tok := e.exchange(t, p.location.Query().Get("code"), verifier)
	if tok.status != 200 || tok.CredID != e.otp || tok.Scope != "credential" || tok.Refresh != "" {
		t.Fatalf("token: %+v", tok)
	}
	r := rssptest.Must(t, e.signHash(t, tok.Access, "", e.otp, h))
	var sh csc.SignHashResponse
	r.Decode(t, &sh)
	e.verify(t, tok.Access, e.otp, [][]byte{h}, sh.Signatures)

	// Checks that need the user's credential happen at the consent page,
	// and go back to the client.
	consentTests := []struct {
		name   string
		params url.Values
		want   string
	}{
		{"fail numSignatures above multisign", url.Values{"credentialID": {e.otp}, "numSignatures": {"4"}}, "invalid_request"},
		{"fail SCAL 2 without hashes", url.Values{"credentialID": {e.scal2}, "numSignatures": {"1"}}, "invalid_request"},
		{"fail unknown credential", url.Values{"credentialID": {"nope"}, "numSignatures": {"1"}}, "invalid_request"},
	}
	for _, tc := range consentTests {
		t.Run(tc.name, func(t *testing.T) {
			_, challenge := pkce()
			tc.params.Set("scope", "credential")
			p := b.get(e.authURL("desktop", desktopRedirect, challenge, tc.params))
			if p.status != 302 || !strings.HasSuffix(p.location.Path, "/consent") {
				t.Fatalf("authorize: %d %v", p.status, p.location)
			}
			c := b.get(p.location.String())
			if c.status != 303 || c.location.Host != "127.0.0.1" {
				t.Fatalf("consent: %d %v", c.status, c.location)
			}
			wantRedirectError(t, c.location.Query(), tc.want, "st-desktop")
		})
	}
}

// TestCredentialToken: the credential token is bound like a SAD.
func TestCredentialToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	h1, h2 := digest("doc 1"), digest("doc 2")
	service := e.srv.Login(t, user, password)
	newToken := func(t *testing.T, n int, hashes ...[]byte) string {
		t.Helper()
		var hs []string
		for _, h := range hashes {
			hs = append(hs, b64url(h))
		}
		code, verifier := e.codeFor(t, b, url.Values{"scope": {"credential"}, "credentialID": {e.scal2},
			"numSignatures": {itoa(n)}, "hashes": {strings.Join(hs, ",")}, "hashAlgorithmOID": {csc.OIDSHA256}},
			url.Values{"pin": {pin}})
		tok := e.exchange(t, code, verifier)
		if tok.status != 200 || tok.CredID != e.scal2 || tok.Expires <= 0 || tok.Expires > 300 {
			t.Fatalf("token: %+v", tok)
		}
		return tok.Access
	}
	tests := []struct {
		name    string
		call    func(t *testing.T, tok string) rssptest.Response
		status  int
		errCode string
	}{
		{"ok bearer", func(t *testing.T, tok string) rssptest.Response { return e.signHash(t, tok, "", e.scal2, h1, h2) }, 200, ""},
		{"ok as SAD", func(t *testing.T, tok string) rssptest.Response { return e.signHash(t, service, tok, e.scal2, h2, h1) }, 200, ""},
		{"ok bearer and itself as SAD", func(t *testing.T, tok string) rssptest.Response { return e.signHash(t, tok, tok, e.scal2, h1, h2) }, 200, ""},
		{"ok credentials/info", func(t *testing.T, tok string) rssptest.Response {
			return e.srv.Call(t, "credentials/info", tok, csc.CredentialsInfoRequest{CredentialID: e.scal2})
		}, 200, ""},
		{"fail other hash (bearer)", func(t *testing.T, tok string) rssptest.Response {
			return e.signHash(t, tok, "", e.scal2, h1, digest("other"))
		}, 400, "invalid_request"},
		{"fail other hash (SAD)", func(t *testing.T, tok string) rssptest.Response {
			return e.signHash(t, service, tok, e.scal2, digest("other"), h2)
		}, 400, "invalid_request"},
		{"fail fewer hashes", func(t *testing.T, tok string) rssptest.Response { return e.signHash(t, tok, "", e.scal2, h1) }, 400, "invalid_request"},
		{"fail other credential (bearer)", func(t *testing.T, tok string) rssptest.Response {
			return e.signHash(t, tok, "", e.otp, h1, h2)
		}, 403, "access_denied"},
		{"fail other credential (SAD)", func(t *testing.T, tok string) rssptest.Response {
			return e.signHash(t, service, tok, e.otp, h1, h2)
		}, 400, "invalid_request"},
		{"fail info of other credential", func(t *testing.T, tok string) rssptest.Response {
			return e.srv.Call(t, "credentials/info", tok, csc.CredentialsInfoRequest{CredentialID: e.otp})
		}, 403, "access_denied"},
		{"fail credentials/list", func(t *testing.T, tok string) rssptest.Response {
			return e.srv.Call(t, "credentials/list", tok, struct{}{})
		}, 403, "access_denied"},
		{"fail credentials/authorize", func(t *testing.T, tok string) rssptest.Response {
			return e.srv.Call(t, "credentials/authorize", tok, csc.AuthorizeRequest{CredentialID: e.scal2, NumSignatures: 1})
		}, 403, "access_denied"},
		{"fail auth/revoke", func(t *testing.T, tok string) rssptest.Response {
			return e.srv.Call(t, "auth/revoke", tok, csc.RevokeRequest{Token: service})
		}, 403, "access_denied"},
		{"fail bearer with another SAD", func(t *testing.T, tok string) rssptest.Response {
			return e.signHash(t, tok, newTokenOther(t, e, b, h1, h2), e.scal2, h1, h2)
		}, 403, "access_denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := newToken(t, 2, h1, h2)
			r := tc.call(t, tok)
			if r.Status != tc.status || (tc.errCode != "" && r.Error().Code != tc.errCode) {
				t.Fatalf("status %d %s, want %d %s", r.Status, r.Body, tc.status, tc.errCode)
			}
			if tc.status == 200 && strings.Contains(tc.name, "signHash") {
				var sh csc.SignHashResponse
				r.Decode(t, &sh)
			}
		})
	}
	t.Run("count", func(t *testing.T) {
		tok := newToken(t, 1, h1)
		rssptest.Must(t, e.signHash(t, tok, "", e.scal2, h1))
		if r := e.signHash(t, tok, "", e.scal2, h1); r.Status != 400 {
			t.Fatalf("second signature with a one-signature token: %d %s", r.Status, r.Body)
		}
		// The token still reads its credential's info.
		rssptest.Must(t, e.srv.Call(t, "credentials/info", tok, csc.CredentialsInfoRequest{CredentialID: e.scal2}))
	})
	t.Run("revoked", func(t *testing.T) {
		tok := newToken(t, 2, h1, h2)
		if r := e.postForm(t, "revoke", "", url.Values{"token": {tok}, "client_id": {"other"}}); r.status != 400 || r.Error != "unauthorized_client" {
			t.Fatalf("revoke by another client: %d %q", r.status, r.Error)
		}
		if r := e.postForm(t, "revoke", "", url.Values{"token": {tok}, "client_id": {"desktop"}}); r.status != 200 {
			t.Fatalf("revoke: %d %s", r.status, r.Error)
		}
		if r := e.signHash(t, tok, "", e.scal2, h1, h2); r.Status != 401 {
			t.Errorf("bearer after revoke: %d", r.Status)
		}
		if r := e.signHash(t, service, tok, e.scal2, h1, h2); r.Status != 400 {
			t.Errorf("SAD after revoke: %d", r.Status)
		}
	})
	t.Run("oauth2code credential refuses credentials/authorize", func(t *testing.T) {
		r := e.srv.Call(t, "credentials/authorize", service, csc.AuthorizeRequest{CredentialID: e.scal2, NumSignatures: 1,
			Hashes: csc.BytesList([][]byte{h1}), HashAlgorithmOID: csc.OIDSHA256, AuthData: []csc.AuthData{{ID: "PIN", Value: pin}}})
		if r.Status != 400 {
			t.Fatalf("status %d %s", r.Status, r.Body)
		}
	})
}

// newTokenOther issues a second credential token for the same credential.
func newTokenOther(t *testing.T, e *env, b *browser, hashes ...[]byte) string {
	t.Helper()
	var hs []string
	for _, h := range hashes {
		hs = append(hs, b64url(h))
	}
	code, verifier := e.codeFor(t, b, url.Values{"scope": {"credential"}, "credentialID": {e.scal2},
		"hashes": {strings.Join(hs, ",")}, "hashAlgorithmOID": {csc.OIDSHA256}}, url.Values{"pin": {pin}})
	return e.exchange(t, code, verifier).Access
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestServiceGrants: refresh rotation and reuse detection, client
// credentials, revocation of a refresh token.
func TestServiceGrants(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	code, verifier := e.codeFor(t, b, url.Values{"scope": {"service"}}, nil)
	tok := e.exchange(t, code, verifier)
	if tok.status != 200 || tok.Refresh == "" || tok.Scope != "service" || tok.Type != "Bearer" {
		t.Fatalf("token: %+v", tok)
	}
	rssptest.Must(t, e.srv.Call(t, "credentials/list", tok.Access, struct{}{}))
	refresh := func(rt, client string) tokenResult {
		return e.postForm(t, "token", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {client}})
	}
	if r := refresh(tok.Refresh, "other"); r.Error != "invalid_grant" {
		t.Fatalf("refresh by another client: %q", r.Error)
	}
	next := refresh(tok.Refresh, "desktop")
	if next.status != 200 || next.Refresh == "" || next.Refresh == tok.Refresh {
		t.Fatalf("refresh: %+v", next)
	}
	if r := e.postForm(t, "token", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next.Refresh},
		"client_id": {"desktop"}, "scope": {"credential"}}); r.Error != "invalid_scope" {
		t.Errorf("refresh to scope credential: %q", r.Error)
	}
	if r := refresh(tok.Refresh, "desktop"); r.Error != "invalid_grant" {
		t.Fatalf("reused refresh token: %q", r.Error)
	}
	if r := e.srv.Call(t, "credentials/list", next.Access, struct{}{}); r.Status != 401 {
		t.Errorf("token of a replayed family still works: %d", r.Status)
	}

	t.Run("client credentials", func(t *testing.T) {
		tests := []struct {
			name    string
			basic   string
			form    url.Values
			status  int
			wantErr string
		}{
			{"ok basic", "portal:" + e.portalSecret, url.Values{}, 200, ""},
			{"ok post", "", url.Values{"client_id": {"portal"}, "client_secret": {e.portalSecret}, "scope": {"service"}}, 200, ""},
			{"fail bad secret", "portal:" + e.portalSecret + "x", url.Values{}, 401, "invalid_client"},
			{"fail no secret", "", url.Values{"client_id": {"portal"}}, 401, "invalid_client"},
			{"fail two methods", "portal:" + e.portalSecret, url.Values{"client_secret": {e.portalSecret}}, 400, "invalid_request"},
			{"fail public client", "", url.Values{"client_id": {"desktop"}}, 400, "unauthorized_client"},
			{"fail scope credential", "portal:" + e.portalSecret, url.Values{"scope": {"credential"}}, 400, "invalid_scope"},
			{"fail scope unknown", "portal:" + e.portalSecret, url.Values{"scope": {"admin"}}, 400, "invalid_scope"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tc.form.Set("grant_type", "client_credentials")
				r := e.postForm(t, "token", tc.basic, tc.form)
				if r.status != tc.status || r.Error != tc.wantErr {
					t.Fatalf("status %d %q (%s), want %d %q", r.status, r.Error, r.Desc, tc.status, tc.wantErr)
				}
				if tc.status == 200 {
					if r.Refresh != "" {
						t.Errorf("client_credentials issued a refresh token")
					}
					rssptest.Must(t, e.srv.Call(t, "credentials/list", r.Access, struct{}{}))
				}
			})
		}
	})
	t.Run("revoke refresh token revokes the family", func(t *testing.T) {
		code, verifier := e.codeFor(t, b, nil, nil)
		tok := e.exchange(t, code, verifier)
		if r := e.postForm(t, "revoke", "", url.Values{"token": {"unknown-token"}, "client_id": {"desktop"}}); r.status != 200 {
			t.Fatalf("unknown token: %d", r.status)
		}
		if r := e.postForm(t, "revoke", "", url.Values{"token": {tok.Refresh}, "token_type_hint": {"refresh_token"}, "client_id": {"desktop"}}); r.status != 200 {
			t.Fatalf("revoke: %d %s", r.status, r.Error)
		}
		if r := e.srv.Call(t, "credentials/list", tok.Access, struct{}{}); r.Status != 401 {
			t.Errorf("access token after its refresh token was revoked: %d", r.Status)
		}
		if r := e.postForm(t, "revoke", "", url.Values{"client_id": {"desktop"}}); r.Error != "invalid_request" {
			t.Errorf("revoke without token: %q", r.Error)
		}
		if r := e.postForm(t, "revoke", "portal:bad-secret-bad-secret", url.Values{"token": {tok.Access}}); r.status != 401 {
			t.Errorf("revoke with a bad secret: %d", r.status)
		}
	})
}

// TestPushedAndRAR: PAR with RAR for the confidential client, request_uri
// single use, PAR errors, and the RAR echo in the token response.
func TestPushedAndRAR(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	verifier, challenge := pkce()
	h := digest("pushed")
	details := `[{"type":"https://cloudsignatureconsortium.org/2025/credential","credentialID":"` + e.scal2 +
		`","hashAlgorithmOID":"2.16.840.1.101.3.4.2.1","documentDigests":[{"hash":"` + csc.Bytes(h).String() + `","label":"Contract №7"}]}]`
	push := func(basic string, f url.Values) tokenResult {
		base := url.Values{"response_type": {"code"}, "redirect_uri": {portalRedirect}, "state": {"par"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "authorization_details": {details}}
		for k, v := range f {
			base[k] = v
		}
		return e.postForm(t, "pushed_authorize", basic, base)
	}
	portal := "portal:" + e.portalSecret
	tests := []struct {
		name    string
		basic   string
		form    url.Values
		status  int
		wantErr string
	}{
		{"fail bad secret", "portal:nope-nope-nope-nope", nil, 401, "invalid_client"},
		{"fail no client authentication", "", url.Values{"client_id": {"portal"}}, 401, "invalid_client"},
		{"fail plain", portal, url.Values{"code_challenge_method": {"plain"}}, 400, "invalid_request"},
		{"fail request_uri pushed", portal, url.Values{"request_uri": {service.RequestURIPrefix + "x"}}, 400, "invalid_request"},
		{"fail redirect mismatch", portal, url.Values{"redirect_uri": {"https://evil.example/cb"}}, 400, "invalid_request"},
		{"fail other client_id", portal, url.Values{"client_id": {"desktop"}}, 400, "invalid_request"},
		{"fail bad rar", portal, url.Values{"authorization_details": {`[{"type":"credential"}]`}}, 400, "invalid_authorization_details"},
		{"ok", portal, nil, 201, ""},
	}
	var requestURI string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := push(tc.basic, tc.form)
			if r.status != tc.status || r.Error != tc.wantErr {
				t.Fatalf("status %d %q (%s), want %d %q", r.status, r.Error, r.Desc, tc.status, tc.wantErr)
			}
			if tc.status == 201 {
				if !strings.HasPrefix(r.RequestURI, service.RequestURIPrefix) || r.Expires != 90 {
					t.Fatalf("push answer: %+v", r)
				}
				requestURI = r.RequestURI
			}
		})
	}
	authURL := e.issuer + "/oauth2/authorize?" + url.Values{"client_id": {"portal"}, "request_uri": {requestURI}}.Encode()
	c, consentURL := b.toConsent(authURL)
	for _, want := range []string{"Signing portal", "Contract №7", csc.Bytes(h).String(), "Contract signing key", "SHA-256"} {
		if !strings.Contains(html.UnescapeString(c.body), want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	f := c.form(t)
	f.Set("action", "approve")
	f.Set("pin", pin)
	p := b.post(consentURL, f)
	if p.status != 303 || p.location.Host != "portal.example" || p.location.Query().Get("state") != "par" {
		t.Fatalf("consent: %d %v", p.status, p.location)
	}
	tok := e.postForm(t, "token", portal, url.Values{"grant_type": {"authorization_code"}, "code": {p.location.Query().Get("code")},
		"redirect_uri": {portalRedirect}, "code_verifier": {verifier}})
	if tok.status != 200 || tok.CredID != e.scal2 {
		t.Fatalf("token: %+v", tok)
	}
	var echoed []map[string]any
	if err := json.Unmarshal(tok.Details, &echoed); err != nil || len(echoed) != 1 || echoed[0]["credentialID"] != e.scal2 ||
		echoed[0]["type"] != oauth.RARTypeCredentialV2 {
		t.Errorf("authorization_details echoed: %s", tok.Details)
	}
	r := rssptest.Must(t, e.signHash(t, tok.Access, "", e.scal2, h))
	var sh csc.SignHashResponse
	r.Decode(t, &sh)
	e.verify(t, tok.Access, e.scal2, [][]byte{h}, sh.Signatures)

	t.Run("fail request_uri reused", func(t *testing.T) {
		p := b.get(authURL)
		if p.status != 400 || !strings.Contains(p.body, "invalid_request_uri") {
			t.Fatalf("status %d:\n%s", p.status, p.body)
		}
	})
	t.Run("fail request_uri of another client", func(t *testing.T) {
		uri := push(portal, nil).RequestURI
		p := b.get(e.issuer + "/oauth2/authorize?" + url.Values{"client_id": {"desktop"}, "request_uri": {uri}}.Encode())
		if p.status != 400 || !strings.Contains(p.body, "invalid_request_uri") {
			t.Fatalf("status %d:\n%s", p.status, p.body)
		}
		// Still usable by its client.
		if p := b.get(e.issuer + "/oauth2/authorize?" + url.Values{"client_id": {"portal"}, "request_uri": {uri}}.Encode()); p.status != 302 {
			t.Fatalf("its own client: %d", p.status)
		}
	})
}

// lastPushed pushes a credential request of the portal client and returns
// its request_uri.
func lastPushed(t *testing.T, e *env, basic string) string {
	t.Helper()
	_, challenge := pkce()
	details := `[{"type":"credential","credentialID":"` + e.scal2 + `","hashAlgorithmOID":"2.16.840.1.101.3.4.2.1",` +
		`"documentDigests":[{"hash":"` + csc.Bytes(digest("pushed")).String() + `","label":"Contract"}]}]`
	r := e.postForm(t, "pushed_authorize", basic, url.Values{"response_type": {"code"}, "redirect_uri": {portalRedirect},
		"state": {"par"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "authorization_details": {details}})
	if r.status != 201 || !strings.HasPrefix(r.RequestURI, service.RequestURIPrefix) {
		t.Fatalf("push: %d %+v", r.status, r)
	}
	return r.RequestURI
}

// shortLived serves a second authorization server over the same service
// with short lifetimes.
func shortLived(t *testing.T, e *env, l service.OAuthOptions) *env {
	t.Helper()
	s, err := oauth.New(e.srv.App.Service, oauth.Options{Issuer: "https://127.0.0.1", Lifetimes: l}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(s)
	t.Cleanup(ts.Close)
	if err := s.SetIssuer(ts.URL); err != nil {
		t.Fatal(err)
	}
	e2 := *e
	e2.issuer, e2.client = ts.URL, ts.Client()
	return &e2
}

func TestLifetimes(t *testing.T) {
	e := newEnv(t)
	short := shortLived(t, e, service.OAuthOptions{CodeTTL: time.Second, RequestURITTL: time.Second})
	b := short.browser(t)
	t.Run("fail expired code", func(t *testing.T) {
		code, verifier := short.codeFor(t, b, nil, nil)
		time.Sleep(1100 * time.Millisecond)
		if r := short.exchange(t, code, verifier); r.status != 400 || r.Error != "invalid_grant" || !strings.Contains(r.Desc, "expired") {
			t.Fatalf("expired code: %d %q %s", r.status, r.Error, r.Desc)
		}
	})
	t.Run("fail expired request_uri", func(t *testing.T) {
		uri := lastPushed(t, short, "portal:"+e.portalSecret)
		time.Sleep(1100 * time.Millisecond)
		p := b.get(short.issuer + "/oauth2/authorize?" + url.Values{"client_id": {"portal"}, "request_uri": {uri}}.Encode())
		if p.status != 302 || p.location.Host != "portal.example" {
			t.Fatalf("status %d location %v:\n%s", p.status, p.location, p.body)
		}
		wantRedirectError(t, p.location.Query(), "invalid_request_uri", "par")
	})
	t.Run("default code lifetime is 60s", func(t *testing.T) {
		if got := e.srv.App.OAuth.OAuth().Options().CodeTTL; got != 60*time.Second {
			t.Errorf("CodeTTL = %v", got)
		}
	})
}

// TestSecretsStoredHashed looks for every secret the flows handed out in
// the database files: none may be there in clear.
func TestSecretsStoredHashed(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	code, verifier := e.codeFor(t, b, url.Values{"scope": {"service"}}, nil)
	tok := e.exchange(t, code, verifier)
	code2, verifier2 := e.codeFor(t, b, url.Values{"scope": {"credential"}, "credentialID": {e.scal2},
		"hashes": {b64url(digest("x"))}, "hashAlgorithmOID": {csc.OIDSHA256}}, url.Values{"pin": {pin}})
	ctok := e.exchange(t, code2, verifier2)
	uri := lastPushed(t, e, "portal:"+e.portalSecret)
	u, _ := url.Parse(e.issuer)
	var cookies []string
	for _, c := range b.c.Jar.Cookies(u) {
		cookies = append(cookies, c.Value)
	}
	if len(cookies) == 0 {
		t.Fatal("no session cookie")
	}
	secrets := map[string]string{"code": code, "credential code": code2, "access token": tok.Access,
		"refresh token": tok.Refresh, "credential token": ctok.Access, "client secret": e.portalSecret,
		"request_uri": strings.TrimPrefix(uri, service.RequestURIPrefix), "session cookie": cookies[0],
		"PIN": pin, "password": password}
	var db []byte
	for _, name := range []string{"rssp.db", "rssp.db-wal"} {
		bs, err := os.ReadFile(filepath.Join(e.srv.Dir, name))
		if err != nil && name == "rssp.db" {
			t.Fatal(err)
		}
		db = append(db, bs...)
	}
	for what, v := range secrets {
		if v == "" {
			t.Errorf("%s is empty", what)
			continue
		}
		if bytes.Contains(db, []byte(v)) {
			t.Errorf("the %s is stored in clear", what)
		}
	}
}
