package oauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/cscclient/oauth"
)

// fakeAS is an authorization server for the tests that need no real one:
// metadata, PAR, an authorize endpoint that answers at once (as if the
// user had approved), token and revocation endpoints.
type fakeAS struct {
	srv *httptest.Server
	mu  sync.Mutex

	// Knobs, set before the flow.
	noMetadata bool                          // 404 for the metadata
	noPAR      bool                          // no pushed_authorization_request_endpoint
	issParam   bool                          // authorization_response_iss_parameter_supported
	mdIssuer   string                        // issuer in the metadata ("" : the right one)
	redirect   func(q url.Values) url.Values // the authorization response, from the request
	token      func(form url.Values) (int, any)
	parStatus  int    // answer of PAR when not 0 (with parError)
	parError   string // error code of a refused PAR

	// Seen.
	pushed   []url.Values // PAR forms
	authQ    []url.Values // authorize queries (after resolving request_uri)
	tokens   []url.Values // token forms
	revoked  []url.Values // revoke forms
	basic    []string     // client IDs seen in HTTP Basic
	requests int
}

func newFakeAS(t *testing.T) *fakeAS {
	t.Helper()
	as := &fakeAS{}
	as.redirect = func(q url.Values) url.Values {
		return url.Values{"code": {"the-code"}, "state": {q.Get("state")}, "iss": {as.issuer()}}
	}
	as.token = func(form url.Values) (int, any) {
		switch form.Get("grant_type") {
		case "refresh_token":
			if form.Get("refresh_token") != "refresh-1" {
				return 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid refresh token"}
			}
			return 200, map[string]any{"access_token": "access-2", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "refresh-2"}
		case "authorization_code":
			if form.Get("code") != "the-code" || form.Get("code_verifier") == "" {
				return 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid authorization code"}
			}
			return 200, map[string]any{"access_token": "access-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "refresh-1"}
		}
		return 400, map[string]string{"error": "unsupported_grant_type"}
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		defer as.mu.Unlock()
		if as.noMetadata {
			http.NotFound(w, r)
			return
		}
		iss := as.mdIssuer
		if iss == "" {
			iss = as.issuer()
		}
		md := map[string]any{
			"issuer":                 iss,
			"authorization_endpoint": as.issuer() + "/oauth2/authorize",
			"token_endpoint":         as.issuer() + "/oauth2/token",
			"revocation_endpoint":    as.issuer() + "/oauth2/revoke",
			"authorization_response_iss_parameter_supported": as.issParam,
		}
		if !as.noPAR {
			md["pushed_authorization_request_endpoint"] = as.issuer() + "/oauth2/pushed_authorize"
		}
		writeJSON(w, 200, md)
	})
	m.HandleFunc("POST /oauth2/pushed_authorize", func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		defer as.mu.Unlock()
		_ = r.ParseForm()
		as.seeBasic(r)
		as.pushed = append(as.pushed, r.PostForm)
		if as.parStatus != 0 {
			writeJSON(w, as.parStatus, map[string]string{"error": as.parError, "error_description": "refused by the test"})
			return
		}
		writeJSON(w, 201, map[string]any{"request_uri": "urn:ietf:params:oauth:request_uri:" + strconv.Itoa(len(as.pushed)-1), "expires_in": 90})
	})
	m.HandleFunc("GET /oauth2/authorize", func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		q := r.URL.Query()
		if ru := q.Get("request_uri"); ru != "" {
			i, err := strconv.Atoi(strings.TrimPrefix(ru, "urn:ietf:params:oauth:request_uri:"))
			if err != nil || i < 0 || i >= len(as.pushed) {
				as.mu.Unlock()
				http.Error(w, "bad request_uri", 400)
				return
			}
			q = as.pushed[i]
		}
		as.authQ = append(as.authQ, q)
		redirect := as.redirect
		as.mu.Unlock()
		u, err := url.Parse(q.Get("redirect_uri"))
		if err != nil || u.Host == "" {
			http.Error(w, "bad redirect_uri", 400)
			return
		}
		u.RawQuery = redirect(q).Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	})
	m.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		_ = r.ParseForm()
		as.seeBasic(r)
		as.tokens = append(as.tokens, r.PostForm)
		token := as.token
		as.mu.Unlock()
		status, body := token(r.PostForm)
		writeJSON(w, status, body)
	})
	m.HandleFunc("POST /oauth2/revoke", func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		defer as.mu.Unlock()
		_ = r.ParseForm()
		as.seeBasic(r)
		as.revoked = append(as.revoked, r.PostForm)
		w.WriteHeader(http.StatusOK)
	})
	as.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		as.requests++
		as.mu.Unlock()
		m.ServeHTTP(w, r)
	}))
	t.Cleanup(as.srv.Close)
	return as
}

func (as *fakeAS) issuer() string { return as.srv.URL }

func (as *fakeAS) seeBasic(r *http.Request) {
	if id, _, ok := r.BasicAuth(); ok {
		as.basic = append(as.basic, id)
	}
}

func (as *fakeAS) set(f func(as *fakeAS)) {
	as.mu.Lock()
	defer as.mu.Unlock()
	f(as)
}

func (as *fakeAS) snapshot() fakeAS {
	as.mu.Lock()
	defer as.mu.Unlock()
	return fakeAS{pushed: as.pushed, authQ: as.authQ, tokens: as.tokens, revoked: as.revoked, basic: as.basic, requests: as.requests}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// httpBrowser is an Opener that follows the authorization URL with a
// plain HTTP client, like a browser whose user approves at once, and keeps
// the page the loopback listener answered.
type httpBrowser struct {
	mu    sync.Mutex
	urls  []string
	pages []string
	edit  func(u *url.URL) // changes the URL before it is followed
	done  chan struct{}
}

func newHTTPBrowser() *httpBrowser { return &httpBrowser{done: make(chan struct{}, 8)} }

func (b *httpBrowser) Open(ctx context.Context, raw string) error {
	b.mu.Lock()
	b.urls = append(b.urls, raw)
	b.mu.Unlock()
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if b.edit != nil {
		b.edit(u)
	}
	go func() {
		defer func() { b.done <- struct{}{} }()
		c := &http.Client{Timeout: 20 * time.Second}
		resp, err := c.Get(u.String())
		if err != nil {
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		b.mu.Lock()
		b.pages = append(b.pages, string(body))
		b.mu.Unlock()
	}()
	return nil
}

// page waits for the page of the last flow.
func (b *httpBrowser) page(t *testing.T) string {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the HTTP browser did not finish")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pages) == 0 {
		return ""
	}
	return b.pages[len(b.pages)-1]
}

func (b *httpBrowser) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.urls)
}

func (b *httpBrowser) lastURL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.urls) == 0 {
		return ""
	}
	return b.urls[len(b.urls)-1]
}

// listenWatch records the redirect URIs of the flows.
type listenWatch struct {
	mu   sync.Mutex
	uris []string
}

func watchListeners(t *testing.T) *listenWatch {
	w := &listenWatch{}
	t.Cleanup(oauth.SetListenHook(func(u string) {
		w.mu.Lock()
		w.uris = append(w.uris, u)
		w.mu.Unlock()
	}))
	return w
}

func (w *listenWatch) last(t *testing.T) string {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.uris) == 0 {
		t.Fatal("no loopback listener was started")
	}
	return w.uris[len(w.uris)-1]
}

// checkClosed checks that the flow of redirectURI left nothing behind: its
// port is free (a listener can bind it again) and no goroutine of package
// oauth runs.
func checkClosed(t *testing.T, redirectURI string) {
	t.Helper()
	u, err := url.Parse(redirectURI)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Errorf("the loopback port %s is still in use: %v", u.Host, err)
	} else {
		ln.Close()
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left [][]byte
		for _, g := range bytes.Split(buf, []byte("\n\n")) {
			// Frames of package oauth, not oauth_test; the default
			// opener's launcher goroutine is allowed to outlive a flow.
			if bytes.Contains(g, []byte("/cscclient/oauth.")) && !bytes.Contains(g, []byte("BrowserOpener.Open")) {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines of package oauth are left:\n%s", len(left), bytes.Join(left, []byte("\n\n")))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
