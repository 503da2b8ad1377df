package oauth_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/oauth"
)

func newTestClient(t *testing.T, as *fakeAS, cfg oauth.Config) *oauth.Client {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = as.issuer()
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "desktop"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	oc, err := oauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return oc
}

// TestLoginFlow runs the service login against the fake server in its
// variants, each followed by the check that the listener is gone.
func TestLoginFlow(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(as *fakeAS)
		cfg      oauth.Config
		edit     func(u *url.URL)
		wantErr  error  // errors.Is
		wantCode string // *oauth.Error Code
		pushed   bool
		page     string // in the loopback's answer
	}{
		{name: "ok pushed", pushed: true, page: "You can close this window"},
		{name: "ok not pushed (DisablePAR)", cfg: oauth.Config{DisablePAR: true}, page: "You can close this window"},
		{name: "ok no PAR offered", setup: func(as *fakeAS) { as.noPAR = true }},
		{name: "ok no metadata: CSC endpoints", setup: func(as *fakeAS) { as.noMetadata = true }},
		{name: "ok confidential client", cfg: oauth.Config{ClientSecret: "s3cret"}, pushed: true},
		{name: "ok iss promised and sent", setup: func(as *fakeAS) { as.issParam = true }, pushed: true},
		{name: "ok iss absent, not promised", setup: func(as *fakeAS) {
			as.redirect = func(q url.Values) url.Values {
				return url.Values{"code": {"the-code"}, "state": {q.Get("state")}}
			}
		}, pushed: true},
		{name: "fail state mismatch", wantErr: oauth.ErrStateMismatch, pushed: true, page: "state mismatch",
			setup: func(as *fakeAS) {
				as.redirect = func(q url.Values) url.Values {
					return url.Values{"code": {"the-code"}, "state": {"forged"}, "iss": {as.issuer()}}
				}
			}},
		{name: "fail state missing", wantErr: oauth.ErrStateMismatch, pushed: true,
			setup: func(as *fakeAS) {
				as.redirect = func(q url.Values) url.Values { return url.Values{"code": {"the-code"}} }
			}},
		{name: "fail iss mismatch", wantErr: oauth.ErrIssuerMismatch, pushed: true,
			setup: func(as *fakeAS) {
				as.redirect = func(q url.Values) url.Values {
					return url.Values{"code": {"the-code"}, "state": {q.Get("state")}, "iss": {"https://evil.example"}}
				}
			}},
		{name: "fail iss promised but absent", wantErr: oauth.ErrIssuerMismatch, pushed: true,
			setup: func(as *fakeAS) {
				as.issParam = true
				as.redirect = func(q url.Values) url.Values {
					return url.Values{"code": {"the-code"}, "state": {q.Get("state")}}
				}
			}},
		{name: "fail access denied", wantErr: cscclient.ErrAccessDenied, wantCode: csc.ErrAccessDenied, pushed: true,
			page: "declined",
			setup: func(as *fakeAS) {
				as.redirect = func(q url.Values) url.Values {
					return url.Values{"error": {"access_denied"}, "error_description": {"The user declined"},
						"state": {q.Get("state")}, "iss": {as.issuer()}}
				}
			}},
		{name: "fail redirect without code", wantErr: cscclient.ErrBadResponse, pushed: true,
			setup: func(as *fakeAS) {
				as.redirect = func(q url.Values) url.Values { return url.Values{"state": {q.Get("state")}} }
			}},
		{name: "fail token invalid_grant", wantErr: cscclient.ErrAuthentication, wantCode: csc.ErrInvalidGrant, pushed: true,
			page: "Nope",
			setup: func(as *fakeAS) {
				as.token = func(url.Values) (int, any) {
					return 400, map[string]string{"error": "invalid_grant", "error_description": "Nope"}
				}
			}},
		{name: "fail token server error", wantErr: cscclient.ErrServer, pushed: true,
			setup: func(as *fakeAS) {
				as.token = func(url.Values) (int, any) { return 500, "oops" }
			}},
		{name: "fail token_type not Bearer", wantErr: cscclient.ErrBadResponse, pushed: true,
			setup: func(as *fakeAS) {
				as.token = func(url.Values) (int, any) {
					return 200, map[string]any{"access_token": "a", "token_type": "MAC"}
				}
			}},
		{name: "fail PAR refused", wantErr: cscclient.ErrAuthentication, wantCode: csc.ErrInvalidClient, pushed: true,
			setup: func(as *fakeAS) { as.parStatus, as.parError = 401, "invalid_client" }},
		{name: "fail metadata of another issuer", wantErr: cscclient.ErrBadResponse,
			setup: func(as *fakeAS) { as.mdIssuer = "https://other.example" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			if tt.setup != nil {
				as.set(tt.setup)
			}
			watch := watchListeners(t)
			b := newHTTPBrowser()
			b.edit = tt.edit
			cfg := tt.cfg
			cfg.Opener = b
			oc := newTestClient(t, as, cfg)
			tok, err := oc.Login(context.Background())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				var oe *oauth.Error
				if tt.wantCode != "" && (!errors.As(err, &oe) || oe.Code != tt.wantCode) {
					t.Fatalf("err = %#v, want code %s", err, tt.wantCode)
				}
				if tok != nil {
					t.Fatal("a token with an error")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if tok.AccessToken != "access-1" || tok.RefreshToken != "refresh-1" || !tok.Valid(time.Minute) {
					t.Fatalf("token %v", tok)
				}
			}
			if strings.HasPrefix(tt.name, "fail metadata") {
				return // no listener was started
			}
			if tt.page != "" {
				if p := b.page(t); !strings.Contains(p, tt.page) {
					t.Errorf("page does not say %q:\n%s", tt.page, p)
				}
			}
			checkClosed(t, watch.last(t))
			s := as.snapshot()
			if got := len(s.pushed) > 0; got != tt.pushed {
				t.Errorf("pushed = %v, want %v", got, tt.pushed)
			}
			if len(s.authQ) == 0 {
				return
			}
			q := s.authQ[0]
			if q.Get("scope") != "service" || q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 ||
				q.Get("response_type") != "code" || q.Get("client_id") != "desktop" {
				t.Errorf("authorization request %v", q)
			}
			if tt.pushed && strings.Contains(b.lastURL(), "code_challenge") {
				t.Errorf("a pushed request shows its parameters in the URL: %s", b.lastURL())
			}
			if cfg.ClientSecret != "" {
				if len(s.basic) == 0 || s.basic[0] != "desktop" {
					t.Errorf("confidential client not authenticated with Basic: %v", s.basic)
				}
				for _, f := range append(s.pushed, s.tokens...) {
					if f.Get("client_secret") != "" {
						t.Errorf("secret in a form: %v", f)
					}
				}
			} else if len(s.basic) != 0 {
				t.Errorf("public client used Basic: %v", s.basic)
			}
			for _, f := range s.tokens {
				if f.Get("redirect_uri") != watch.last(t) || f.Get("code_verifier") == "" {
					t.Errorf("token request %v", f)
				}
			}
		})
	}
}

// TestWaitEnds covers the ends of the wait that are not an answer: the
// timeout, the caller's context, and an opener that fails.
func TestWaitEnds(t *testing.T) {
	never := oauth.OpenerFunc(func(context.Context, string) error { return nil })
	blocks := oauth.OpenerFunc(func(ctx context.Context, _ string) error { <-ctx.Done(); return ctx.Err() })
	fails := oauth.OpenerFunc(func(context.Context, string) error { return errors.New("no display") })
	tests := []struct {
		name    string
		opener  oauth.Opener
		cfg     oauth.Config
		cancel  time.Duration // cancel the context after this
		wantErr error
		maxTime time.Duration
	}{
		{name: "timeout, opener returns", opener: never, cfg: oauth.Config{Timeout: 300 * time.Millisecond},
			wantErr: oauth.ErrTimeout, maxTime: 3 * time.Second},
		{name: "timeout, opener blocks", opener: blocks, cfg: oauth.Config{Timeout: 300 * time.Millisecond},
			wantErr: oauth.ErrTimeout, maxTime: 3 * time.Second},
		{name: "cancelled", opener: never, cancel: 200 * time.Millisecond, wantErr: context.Canceled, maxTime: 3 * time.Second},
		{name: "opener fails, URL shown nowhere", opener: fails, wantErr: oauth.ErrNoBrowser, maxTime: 3 * time.Second},
		{name: "opener fails, URL shown: waits", opener: fails,
			cfg:     oauth.Config{Timeout: 300 * time.Millisecond, OnURL: func(string) {}},
			wantErr: oauth.ErrTimeout, maxTime: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			watch := watchListeners(t)
			cfg := tt.cfg
			cfg.Opener = tt.opener
			oc := newTestClient(t, as, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			start := time.Now()
			_, err := oc.AuthorizeCredential(ctx, oauth.CredentialRequest{CredentialID: "c1"})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if d := time.Since(start); d > tt.maxTime {
				t.Errorf("took %v", d)
			}
			checkClosed(t, watch.last(t))
			if n := len(as.snapshot().tokens); n != 0 {
				t.Errorf("%d token requests", n)
			}
		})
	}
}

// TestOutAndOnURL checks that the URL reaches the user for headless use.
func TestOutAndOnURL(t *testing.T) {
	as := newFakeAS(t)
	var out strings.Builder
	var got string
	b := newHTTPBrowser()
	oc := newTestClient(t, as, oauth.Config{Opener: b, Out: &out, OnURL: func(u string) { got = u }})
	if _, err := oc.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got == "" || got != b.lastURL() || !strings.Contains(out.String(), got) || !strings.Contains(out.String(), "within 1m30s") {
		t.Fatalf("OnURL %q, Out %q, opened %q", got, out.String(), b.lastURL())
	}
}

// TestRefreshAndRevoke covers the grants without the browser.
func TestRefreshAndRevoke(t *testing.T) {
	as := newFakeAS(t)
	oc := newTestClient(t, as, oauth.Config{Opener: newHTTPBrowser()})
	ctx := context.Background()
	tok, err := oc.Refresh(ctx, "refresh-1")
	if err != nil || tok.AccessToken != "access-2" || tok.RefreshToken != "refresh-2" {
		t.Fatalf("refresh: %v %v", tok, err)
	}
	_, err = oc.Refresh(ctx, "stale")
	var oe *oauth.Error
	if !errors.Is(err, cscclient.ErrAuthentication) || !errors.As(err, &oe) || oe.Code != "invalid_grant" ||
		oe.Description != "Invalid refresh token" || oe.Endpoint != oauth.EndpointToken || oe.StatusCode != 400 {
		t.Fatalf("refresh with a stale token: %#v", err)
	}
	if err := oc.Revoke(ctx, "refresh-2", "refresh_token"); err != nil {
		t.Fatal(err)
	}
	r := as.snapshot().revoked
	if len(r) != 1 || r[0].Get("token") != "refresh-2" || r[0].Get("token_type_hint") != "refresh_token" || r[0].Get("client_id") != "desktop" {
		t.Fatalf("revoke form %v", r)
	}
}

// TestSessionHooks plugs Login and Refresh into a cscclient.Session.
func TestSessionHooks(t *testing.T) {
	as := newFakeAS(t)
	b := newHTTPBrowser()
	oc := newTestClient(t, as, oauth.Config{Opener: b})
	ctx := context.Background()
	store := &memStore{}
	s := oc.NewSession("alice", store)
	tok, err := s.Token(ctx) // nothing stored: the browser
	if err != nil || tok.AccessToken != "access-1" {
		t.Fatalf("first token: %v %v", tok, err)
	}
	if b.count() != 1 || store.n == 0 {
		t.Fatalf("%d browser flows, %d stores", b.count(), store.n)
	}
	// Expire it: the refresh token is used silently.
	if err := s.Set(ctx, &cscclient.Token{AccessToken: "access-1", RefreshToken: "refresh-1", Expiry: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if tok, err = s.Token(ctx); err != nil || tok.AccessToken != "access-2" {
		t.Fatalf("refreshed token: %v %v", tok, err)
	}
	if b.count() != 1 {
		t.Fatalf("the refresh opened the browser")
	}
	// A refused refresh token sends the user to the browser again.
	if err := s.Set(ctx, &cscclient.Token{AccessToken: "x", RefreshToken: "stale", Expiry: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if tok, err = s.Token(ctx); err != nil || tok.AccessToken != "access-1" || b.count() != 2 {
		t.Fatalf("after a refused refresh: %v %v, %d flows", tok, err, b.count())
	}
	if err := oc.Logout(ctx, s); err != nil {
		t.Fatal(err)
	}
	r := as.snapshot().revoked
	if len(r) != 2 || r[0].Get("token") != "refresh-1" || r[1].Get("token") != "access-1" {
		t.Fatalf("logout revoked %v", r)
	}
	if cur, _ := s.Current(ctx); cur != nil || store.n != 0 && store.data != nil {
		t.Fatalf("after logout: %v, store %v", cur, store.data)
	}
}

var errNotExist = fs.ErrNotExist

func newServer(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// memStore is a cscclient.SecretStore in memory.
type memStore struct {
	data []byte
	n    int
}

func (m *memStore) Get(context.Context, string, string) ([]byte, error) {
	if m.data == nil {
		return nil, errNotExist
	}
	return m.data, nil
}

func (m *memStore) Set(_ context.Context, _, _ string, b []byte) error {
	m.data, m.n = b, m.n+1
	return nil
}

func (m *memStore) Delete(context.Context, string, string) error {
	m.data = nil
	return nil
}

// TestEndpoints covers discovery (RFC 8414) and its fallback.
func TestEndpoints(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(as *fakeAS)
		prefix     string // issuer path
		wantPAR    bool
		discovered bool
		wantErr    error
	}{
		{name: "ok metadata", wantPAR: true, discovered: true},
		{name: "ok metadata without PAR", setup: func(as *fakeAS) { as.noPAR = true }, discovered: true},
		{name: "ok no metadata", setup: func(as *fakeAS) { as.noMetadata = true }},
		{name: "ok issuer with a path, no metadata there", prefix: "/tenant"},
		{name: "fail issuer mismatch", setup: func(as *fakeAS) { as.mdIssuer = "https://x.example" }, wantErr: cscclient.ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			if tt.setup != nil {
				as.set(tt.setup)
			}
			oc := newTestClient(t, as, oauth.Config{Issuer: as.issuer() + tt.prefix, Opener: newHTTPBrowser()})
			ep, err := oc.Endpoints(context.Background())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			iss := as.issuer() + tt.prefix
			if ep.Issuer != iss || ep.Authorization != iss+"/oauth2/authorize" || ep.Token != iss+"/oauth2/token" ||
				ep.Revocation != iss+"/oauth2/revoke" || (ep.PushedAuthorization != "") != tt.wantPAR || ep.Discovered != tt.discovered {
				t.Fatalf("endpoints %+v", ep)
			}
			n := as.snapshot().requests
			if _, err := oc.Endpoints(context.Background()); err != nil || as.snapshot().requests != n {
				t.Fatalf("discovery not cached: %v", err)
			}
		})
	}
}

// TestEndpointsPathIssuer: for an issuer with a path the metadata is
// looked up at /.well-known/oauth-authorization-server/path first.
func TestEndpointsPathIssuer(t *testing.T) {
	var seen []string
	var iss string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Path)
		if r.URL.Path == "/.well-known/oauth-authorization-server/tenant" {
			writeJSON(w, 200, map[string]any{"issuer": iss, "authorization_endpoint": iss + "/authz",
				"token_endpoint": iss + "/tok"})
			return
		}
		http.NotFound(w, r)
	})
	iss = srv + "/tenant"
	oc, err := oauth.New(oauth.Config{Issuer: iss, ClientID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := oc.Endpoints(context.Background())
	if err != nil || ep.Authorization != iss+"/authz" || ep.Revocation != "" || len(seen) != 1 {
		t.Fatalf("%+v %v, requests %v", ep, err, seen)
	}
}

func TestNewChecks(t *testing.T) {
	tests := []struct {
		name string
		cfg  oauth.Config
		ok   bool
	}{
		{"ok https", oauth.Config{Issuer: "https://as.example/", ClientID: "c"}, true},
		{"ok http loopback", oauth.Config{Issuer: "http://127.0.0.1:8080", ClientID: "c"}, true},
		{"ok endpoints given", oauth.Config{Endpoints: &oauth.Endpoints{}, ClientID: "c"}, true},
		{"fail no client", oauth.Config{Issuer: "https://as.example"}, false},
		{"fail http elsewhere", oauth.Config{Issuer: "http://as.example", ClientID: "c"}, false},
		{"fail query", oauth.Config{Issuer: "https://as.example?x=1", ClientID: "c"}, false},
		{"fail callback path", oauth.Config{Issuer: "https://as.example", ClientID: "c", CallbackPath: "cb"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := oauth.New(tt.cfg)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if err != nil && !errors.Is(err, cscclient.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
		})
	}
}
