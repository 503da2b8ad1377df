package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/oauth"
	"github.com/csctoken/csctoken/rssp/service"
)

// abandonCall posts request_uri to oauth2/abandon with bearer.
func (e *env) abandonCall(t *testing.T, bearer, requestURI string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/abandon",
		strings.NewReader(url.Values{"request_uri": {requestURI}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var ce csc.Error
	_ = json.Unmarshal(body, &ce)
	return resp.StatusCode, ce.Code
}

// status asks oauth2/status about a pending request's handle.
func (b *browser) status(t *testing.T, issuer, handle string) string {
	t.Helper()
	p := b.get(issuer + "/oauth2/status?request=" + url.QueryEscape(handle))
	var s struct {
		State   string `json:"state"`
		Message string `json:"message"`
	}
	if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &s) != nil {
		t.Fatalf("status: %d %s", p.status, p.body)
	}
	if s.State == "abandoned" && s.Message != authserver.AbandonedMessage {
		t.Errorf("status message %q", s.Message)
	}
	return s.State
}

// TestAbandon: the program that pushed a credential authorization stops
// waiting (the host quit) and says so with the user's service token; the
// consent page, open or not yet opened, then says the request was
// abandoned, and approving it gives no code.
func TestAbandon(t *testing.T) {
	e := newEnv(t)
	alice := e.srv.Login(t, user, password)
	e.srv.AddUser(t, "bob", password)
	bob := e.srv.Login(t, "bob", password)
	h := digest("abandoned")
	push := func(t *testing.T) string {
		t.Helper()
		_, challenge := pkce()
		r := e.postForm(t, "pushed_authorize", "", url.Values{"client_id": {"desktop"}, "response_type": {"code"},
			"redirect_uri": {"http://127.0.0.1:4711/callback"}, "state": {"s"}, "code_challenge": {challenge},
			"code_challenge_method": {"S256"}, "scope": {"credential"}, "credentialID": {e.scal2},
			"numSignatures": {"1"}, "hashes": {b64url(h)}, "hashAlgorithmOID": {csc.OIDSHA256}})
		if r.status != http.StatusCreated {
			t.Fatalf("push: %+v", r)
		}
		return r.RequestURI
	}
	authURL := func(uri string) string {
		return e.issuer + "/oauth2/authorize?" + url.Values{"client_id": {"desktop"}, "request_uri": {uri}}.Encode()
	}
	wantAbandonedPage := func(t *testing.T, p page) {
		t.Helper()
		if p.status != http.StatusGone || !strings.Contains(html.UnescapeString(p.body), authserver.AbandonedMessage) {
			t.Fatalf("page: status %d, want 410 saying abandoned:\n%s", p.status, p.body)
		}
	}

	t.Run("consent page open", func(t *testing.T) {
		uri := push(t)
		b := e.browser(t)
		c, consentURL := b.toConsent(authURL(uri))
		// The script is the file as it is (its hash is in the CSP).
		js, err := os.ReadFile("templates/poll.js")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(c.body, "<script>"+string(js)+"</script>") {
			t.Errorf("the consent page does not poll its status with templates/poll.js:\n%s", c.body)
		}
		f := c.form(t)
		handle := f.Get("request")
		if got := b.status(t, e.issuer, handle); got != "pending" {
			t.Fatalf("status %q, want pending", got)
		}
		// Refused: no token, a credential token, another user's token,
		// an unknown request.
		for _, tc := range []struct {
			name, bearer, uri string
			status            int
		}{
			{"no token", "", uri, http.StatusUnauthorized},
			{"bad token", "not-a-token", uri, http.StatusBadRequest},
			{"other user", bob, uri, http.StatusBadRequest},
			{"unknown request", alice, service.RequestURIPrefix + "nope", http.StatusBadRequest},
			{"not a request_uri", alice, "urn:example:x", http.StatusBadRequest},
		} {
			if st, code := e.abandonCall(t, tc.bearer, tc.uri); st != tc.status {
				t.Errorf("%s: %d %s, want %d", tc.name, st, code, tc.status)
			}
		}
		if got := b.status(t, e.issuer, handle); got != "pending" {
			t.Fatalf("after refused calls: status %q, want pending", got)
		}
		if st, code := e.abandonCall(t, alice, uri); st != http.StatusNoContent {
			t.Fatalf("abandon: %d %s", st, code)
		}
		if st, code := e.abandonCall(t, alice, uri); st != http.StatusNoContent {
			t.Fatalf("abandon twice: %d %s", st, code)
		}
		if got := b.status(t, e.issuer, handle); got != "abandoned" {
			t.Fatalf("status %q, want abandoned", got)
		}
		wantAbandonedPage(t, b.get(consentURL))
		// The page the user still has open: approving gives no code.
		f.Set("action", "approve")
		f.Set("pin", pin)
		p := b.post(consentURL, f)
		wantAbandonedPage(t, p)
		if p.location != nil {
			t.Fatalf("approve of an abandoned request redirected to %v", p.location)
		}
		if got := b.status(t, e.issuer, handle); got != "abandoned" {
			t.Fatalf("after approve: status %q, want abandoned", got)
		}
		f.Set("action", "deny")
		wantAbandonedPage(t, b.post(consentURL, f))
	})

	t.Run("not opened yet", func(t *testing.T) {
		uri := push(t)
		if st, code := e.abandonCall(t, alice, uri); st != http.StatusNoContent {
			t.Fatalf("abandon: %d %s", st, code)
		}
		b := e.browser(t)
		wantAbandonedPage(t, b.get(authURL(uri)))
	})

	t.Run("fail already approved", func(t *testing.T) {
		uri := push(t)
		b := e.browser(t)
		q := b.authorize(authURL(uri), "approve", url.Values{"pin": {pin}})
		if q.Get("code") == "" {
			t.Fatalf("no code: %v", q)
		}
		if st, code := e.abandonCall(t, alice, uri); st != http.StatusBadRequest || code != "invalid_request_uri" {
			t.Fatalf("abandon after approval: %d %s, want 400 invalid_request_uri", st, code)
		}
	})

	t.Run("fail credential token", func(t *testing.T) {
		verifier, challenge := pkce()
		b := e.browser(t)
		q := b.authorize(e.authURL("desktop", desktopRedirect, challenge, url.Values{"scope": {"credential"},
			"credentialID": {e.scal2}, "numSignatures": {"1"}, "hashes": {b64url(h)}, "hashAlgorithmOID": {csc.OIDSHA256}}),
			"approve", url.Values{"pin": {pin}})
		tok := e.exchange(t, q.Get("code"), verifier)
		if tok.status != http.StatusOK {
			t.Fatalf("token: %+v", tok)
		}
		uri := push(t)
		if st, code := e.abandonCall(t, tok.Access, uri); st != http.StatusForbidden || code != "access_denied" {
			t.Fatalf("abandon with a credential token: %d %s, want 403 access_denied", st, code)
		}
	})

	t.Run("program gone while holding", func(t *testing.T) {
		// The program holds a call open while it waits (hold=1) and
		// dies: the connection closes, no new hold comes, and after the
		// grace the request is abandoned.
		grace := oauth.HoldGrace
		oauth.HoldGrace = 300 * time.Millisecond
		t.Cleanup(func() { oauth.HoldGrace = grace })
		uri := push(t)
		b := e.browser(t)
		c, _ := b.toConsent(authURL(uri))
		handle := c.form(t).Get("request")
		ctx, cancel := context.WithCancel(t.Context())
		held := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.issuer+"/oauth2/abandon",
				strings.NewReader(url.Values{"request_uri": {uri}, "hold": {"1"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+alice)
			resp, err := e.client.Do(req)
			if err == nil {
				resp.Body.Close()
				err = fmt.Errorf("the hold ended by itself: %d", resp.StatusCode)
			}
			held <- err
		}()
		time.Sleep(time.Second)
		if got := b.status(t, e.issuer, handle); got != "pending" {
			t.Fatalf("status %q while held, want pending", got)
		}
		cancel()
		if err := <-held; !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		// 300 ms of grace; the rest is room for a loaded machine (seen
		// failing at 5 s with a load average of 8 on 2 cores).
		deadline := time.Now().Add(15 * time.Second)
		for b.status(t, e.issuer, handle) != "abandoned" {
			if time.Now().After(deadline) {
				t.Fatal("the request of a dropped hold was not abandoned within 15 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("hold ends when answered", func(t *testing.T) {
		uri := push(t)
		b := e.browser(t)
		done := make(chan string, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/abandon",
				strings.NewReader(url.Values{"request_uri": {uri}, "hold": {"1"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+alice)
			resp, err := e.client.Do(req)
			if err != nil {
				done <- err.Error()
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			done <- fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}()
		time.Sleep(500 * time.Millisecond)
		if q := b.authorize(authURL(uri), "approve", url.Values{"pin": {pin}}); q.Get("code") == "" {
			t.Fatalf("no code: %v", q)
		}
		select {
		case got := <-done:
			if got != `200 {"state":"gone"}` {
				t.Fatalf("hold answered %s", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the hold did not end when the request was answered")
		}
	})

	t.Run("holds bounded per user", func(t *testing.T) {
		// Each hold keeps a connection and polls the store: a user may
		// not open more than MaxHoldsPerUser at once (429); another
		// user may, and a slot freed serves again.
		limit := oauth.MaxHoldsPerUser
		oauth.MaxHoldsPerUser = 2
		t.Cleanup(func() { oauth.MaxHoldsPerUser = limit })
		uri := push(t)
		hold := func(ctx context.Context, bearer string) (int, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.issuer+"/oauth2/abandon",
				strings.NewReader(url.Values{"request_uri": {uri}, "hold": {"1"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+bearer)
			resp, err := e.client.Do(req)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = hold(ctx, alice) }()
		}
		time.Sleep(500 * time.Millisecond)
		quick, qcancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer qcancel()
		if st, err := hold(quick, alice); err != nil || st != http.StatusTooManyRequests {
			t.Errorf("a third hold of alice: %d %v, want 429", st, err)
		}
		if st, err := hold(quick, bob); err != nil || st != http.StatusOK {
			t.Errorf("bob's hold (of a request not his): %d %v, want 200 gone", st, err)
		}
		cancel()
		wg.Wait()
		time.Sleep(100 * time.Millisecond)
		again, acancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer acancel()
		if _, err := hold(again, alice); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a hold after the others ended: %v, want it held", err)
		}
	})
}
