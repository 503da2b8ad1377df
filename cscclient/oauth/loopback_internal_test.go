package oauth

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/cscclient"
)

// TestCallbackRequests covers what the loopback listener refuses, and that
// only its first answer counts.
func TestCallbackRequests(t *testing.T) {
	cb, err := listenCallback("/callback", "st", "https://as.example", false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer cb.close()
	if !strings.HasPrefix(cb.redirectURI, "http://127.0.0.1:") || !strings.HasSuffix(cb.redirectURI, "/callback") {
		t.Fatalf("redirect URI %s", cb.redirectURI)
	}
	base := "http://" + cb.host
	do := func(method, target, host string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct {
		name, method, target, host string
		status                     int
	}{
		{"fail other path", "GET", base + "/favicon.ico", "", http.StatusNotFound},
		{"fail POST", "POST", base + "/callback?state=st&code=c", "", http.StatusMethodNotAllowed},
		{"fail other host (DNS rebinding)", "GET", base + "/callback?state=st&code=c", "evil.example:80", http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if st, _ := do(tt.method, tt.target, tt.host); st != tt.status {
				t.Fatalf("status %d, want %d", st, tt.status)
			}
		})
	}
	select {
	case r := <-cb.result:
		t.Fatalf("a refused request was taken as the answer: %+v", r)
	default:
	}
	// The answer: the page waits for the flow's outcome.
	go func() {
		r := <-cb.result
		if r.err != nil || r.code != "c" {
			t.Errorf("result %+v", r)
		}
		cb.finish(nil)
	}()
	st, body := do("GET", base+"/callback?state=st&code=c&iss="+url.QueryEscape("https://as.example"), "")
	if st != http.StatusOK || !strings.Contains(body, "You can close this window") {
		t.Fatalf("answer %d:\n%s", st, body)
	}
	if st, _ := do("GET", base+"/callback?state=st&code=c2", ""); st != http.StatusGone {
		t.Fatalf("second answer: status %d, want 410", st)
	}
}

// TestCallbackCheck covers the reading of authorization responses.
func TestCallbackCheck(t *testing.T) {
	const iss = "https://as.example"
	tests := []struct {
		name       string
		q          string
		requireIss bool
		code       string
		wantErr    error
		wantCode   string
	}{
		{name: "ok", q: "state=st&code=c&iss=" + iss, code: "c"},
		{name: "ok without iss", q: "state=st&code=c", code: "c"},
		{name: "fail state", q: "state=x&code=c", wantErr: ErrStateMismatch},
		{name: "fail two states", q: "state=st&state=st&code=c", wantErr: ErrStateMismatch},
		{name: "fail no state", q: "code=c", wantErr: ErrStateMismatch},
		{name: "fail iss", q: "state=st&code=c&iss=https://as.example.evil", wantErr: ErrIssuerMismatch},
		{name: "fail iss required", q: "state=st&code=c", requireIss: true, wantErr: ErrIssuerMismatch},
		{name: "fail state checked before error", q: "state=x&error=access_denied", wantErr: ErrStateMismatch},
		{name: "fail access_denied", q: "state=st&error=access_denied&error_description=No", wantErr: cscclient.ErrAccessDenied,
			wantCode: "access_denied"},
		{name: "fail invalid_scope", q: "state=st&error=invalid_scope", wantCode: "invalid_scope"},
		{name: "fail no code", q: "state=st", wantErr: cscclient.ErrBadResponse},
		{name: "fail two codes", q: "state=st&code=a&code=b", wantErr: cscclient.ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cb := &callback{state: "st", issuer: iss, requireIss: tt.requireIss}
			q, err := url.ParseQuery(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			code, err := cb.check(q)
			if tt.wantErr == nil && tt.wantCode == "" {
				if err != nil || code != tt.code {
					t.Fatalf("check = %q, %v", code, err)
				}
				return
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var oe *Error
			if tt.wantCode != "" && (!errors.As(err, &oe) || oe.Code != tt.wantCode || oe.Endpoint != EndpointAuthorize) {
				t.Fatalf("err = %#v, want code %s", err, tt.wantCode)
			}
		})
	}
}

// TestCallbackPageEscapes: the error description comes from the redirect,
// which anyone can forge: it must not become markup.
func TestCallbackPageEscapes(t *testing.T) {
	cb, err := listenCallback("/callback", "st", "", false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer cb.close()
	resp, err := http.Get(cb.redirectURI + "?state=st&error=invalid_request&error_description=" +
		url.QueryEscape(`<script>alert(1)</script>`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), "<script>") || !strings.Contains(string(b), "&lt;script&gt;") {
		t.Fatalf("page:\n%s", b)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") ||
		resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("headers %v", resp.Header)
	}
	select {
	case r := <-cb.result:
		var oe *Error
		if !errors.As(r.err, &oe) || oe.Code != "invalid_request" {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(time.Second):
		t.Fatal("no result")
	}
}
