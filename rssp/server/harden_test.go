package server_test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/notify"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/sqlite"
)

// basicLogin posts auth/login with HTTP Basic.
func basicLogin(t *testing.T, s *rssptest.Server, name, pw string) rssptest.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/login", strings.NewReader("{}"))
	req.SetBasicAuth(name, pw)
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return rssptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// auditRows returns every audit row of event.
func auditRows(t *testing.T, s *rssptest.Server, event string) []store.AuditEvent {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, s.App.Config.Path(s.App.Config.Store.Path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []store.AuditEvent
	for after := int64(0); ; {
		evs, err := db.AuditEvents(ctx, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, e := range evs {
			if e.Event == event {
				out = append(out, e)
			}
			after = e.Seq
		}
	}
}

// retryAfter checks a 429/503 answer's Retry-After and error code.
func retryAfter(t *testing.T, r rssptest.Response, status int) int {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d (%s), want %d", r.Status, r.Body, status)
	}
	if c := r.Error().Code; c != csc.ErrTemporarilyUnavailable {
		t.Errorf("error %q, want %s", c, csc.ErrTemporarilyUnavailable)
	}
	n, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	return n
}

// Item 1 of the hardening: concurrent password hashes are bounded; a burst
// beyond the bound gets 503 + Retry-After instead of taking memory.
func TestLoginHashBound(t *testing.T) {
	s := rssptest.Start(t, rssptest.Options{Edit: func(c *config.Config) {
		// A hash that takes a while, two slots, almost no queueing.
		c.Security.Argon2Time, c.Security.Argon2Memory = 3, 8*1024
		c.Security.PasswordHashSlots = 2
		c.Security.PasswordHashWait = config.Duration{Duration: time.Millisecond}
		c.Security.ThrottleAccountBurst, c.Security.ThrottleAddressBurst = -1, -1
	}})
	s.AddUser(t, user, password)
	const n = 24
	var wg sync.WaitGroup
	res := make([]rssptest.Response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := user
			if i%2 == 1 {
				name = "nobody" // unknown users queue alike
			}
			res[i] = basicLogin(t, s, name, "wrong password")
		}()
	}
	wg.Wait()
	busy := 0
	for _, r := range res {
		switch r.Status {
		case http.StatusBadRequest:
			if r.Error().Code != csc.ErrAuthenticationError {
				t.Errorf("400 with %s", r.Body)
			}
		case http.StatusServiceUnavailable:
			retryAfter(t, r, http.StatusServiceUnavailable)
			busy++
		default:
			t.Errorf("status %d: %s", r.Status, r.Body)
		}
	}
	if busy == 0 {
		t.Fatalf("%d concurrent logins with 2 hash slots: none was refused as busy", n)
	}
	// The owner still logs in once the burst is over.
	s.Login(t, user, password)
}

// Item 2: wrong passwords are throttled per account and per address, with
// 429 + Retry-After and an audit row; the account recovers by itself.
func TestLoginThrottle(t *testing.T) {
	s := rssptest.Start(t, rssptest.Options{Edit: func(c *config.Config) {
		c.Security.ThrottleAccountBurst = 3
		c.Security.ThrottleAccountEvery = config.Duration{Duration: 400 * time.Millisecond}
		c.Security.ThrottleAddressBurst = 6
		c.Security.ThrottleAddressEvery = config.Duration{Duration: time.Hour}
	}})
	s.AddUser(t, user, password)
	s.AddUser(t, "bob", password)
	for i := range 3 {
		if r := basicLogin(t, s, user, "guess"); r.Status != http.StatusBadRequest {
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Body)
		}
	}
	// The account's bucket is empty: refused before the password is
	// checked, the right one too (the trade-off, for a while).
	retryAfter(t, basicLogin(t, s, user, "guess"), http.StatusTooManyRequests)
	retryAfter(t, basicLogin(t, s, user, password), http.StatusTooManyRequests)
	// Another account from the same address still works.
	s.Login(t, "bob", password)
	// It refills: no permanent lockout.
	time.Sleep(450 * time.Millisecond)
	s.Login(t, user, password)

	// The address: 6 failures in all, whatever the account.
	for i, name := range []string{"carol", "dave", "erin"} {
		if r := basicLogin(t, s, name, "guess"); r.Status != http.StatusBadRequest {
			t.Fatalf("address guess %d: %d %s", i, r.Status, r.Body)
		}
	}
	retryAfter(t, basicLogin(t, s, "frank", "guess"), http.StatusTooManyRequests)
	if n := retryAfter(t, basicLogin(t, s, "bob", password), http.StatusTooManyRequests); n < 60 {
		t.Errorf("address Retry-After %d s, want about an hour", n)
	}

	rows := auditRows(t, s, "throttle")
	var account, address bool
	for _, e := range rows {
		account = account || strings.Contains(e.Detail, "account "+user)
		address = address || strings.Contains(e.Detail, "address 127.0.0.1")
		if e.Result != "throttled" {
			t.Errorf("throttle row result %q", e.Result)
		}
	}
	if !account || !address {
		t.Errorf("throttle audit rows %+v: want one for the account and one for the address", rows)
	}
}

// Item 3: two simultaneous redemptions of one refresh token: exactly one
// wins; the other is a reuse and revokes the family, the winner's new
// tokens included.
func TestRefreshRace(t *testing.T) {
	s := rssptest.Start(t, rssptest.Options{})
	s.AddUser(t, user, password)
	for round := range 5 {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/login", strings.NewReader(`{"rememberMe":true}`))
		req.SetBasicAuth(user, password)
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var lr csc.LoginResponse
		_ = json.NewDecoder(resp.Body).Decode(&lr)
		resp.Body.Close()
		if lr.RefreshToken == "" {
			t.Fatalf("no refresh token")
		}
		const racers = 8
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			res   = make([]rssptest.Response, racers)
		)
		for i := range racers {
			wg.Go(func() {
				<-start
				res[i] = s.Call(t, "auth/login", "", map[string]any{"refresh_token": lr.RefreshToken})
			})
		}
		close(start)
		wg.Wait()
		var winners []csc.LoginResponse
		for _, r := range res {
			switch {
			case r.Status == http.StatusOK:
				var w csc.LoginResponse
				r.Decode(t, &w)
				winners = append(winners, w)
			case r.Status == http.StatusUnauthorized && r.Error().Code == csc.ErrInvalidToken:
			default:
				t.Fatalf("refresh: %d %s", r.Status, r.Body)
			}
		}
		if len(winners) > 1 {
			t.Fatalf("round %d: %d of %d simultaneous refreshes succeeded, want at most 1", round, len(winners), racers)
		}
		// Losers were reuse: the family is gone, the winner's tokens too.
		for _, w := range winners {
			if r := s.Call(t, "credentials/list", w.AccessToken, map[string]any{}); r.Status != http.StatusUnauthorized {
				t.Errorf("round %d: the winner's access token after a reuse: %d %s", round, r.Status, r.Body)
			}
			if r := s.Call(t, "auth/login", "", map[string]any{"refresh_token": w.RefreshToken}); r.Status != http.StatusUnauthorized {
				t.Errorf("round %d: the winner's refresh token after a reuse: %d %s", round, r.Status, r.Body)
			}
		}
	}
}

// Item 4: another user's authorizeCheck on a decided out-of-band handle
// takes nothing: the owner still gets the SAD.
func TestAuthorizeCheckOwner(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	srv.AddUser(t, "bob", password)
	id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, OOB: true})
	alice, bob := srv.Login(t, user, password), srv.Login(t, "bob", password)
	r := srv.Call(t, "credentials/authorize", alice, map[string]any{"credentialID": id, "numSignatures": 1,
		"authData": []map[string]string{{"id": "PIN", "value": pin}, {"id": "OOB"}}})
	var ar csc.AuthorizeResponse
	r.Decode(t, &ar)
	if r.Status != http.StatusAccepted || ar.Handle == "" {
		t.Fatalf("authorize: %d %s", r.Status, r.Body)
	}
	phone(t, srv, id, "approve")
	if r := srv.Call(t, "credentials/authorizeCheck", bob, map[string]any{"handle": ar.Handle}); r.Status != http.StatusBadRequest {
		t.Fatalf("bob's authorizeCheck on alice's handle: %d %s", r.Status, r.Body)
	}
	var got csc.AuthorizeResponse
	rssptest.Must(t, srv.Call(t, "credentials/authorizeCheck", alice, map[string]any{"handle": ar.Handle})).Decode(t, &got)
	if got.SAD == "" {
		t.Fatal("alice got no SAD after bob's attempt")
	}
}

// Item 5: a SAD is never issued without its audit row. A trigger makes the
// audit table refuse "authorize" rows (as a full disk would refuse the
// append): credentials/authorize must then fail and leave no SAD.
func TestAuthorizeAuditAtomic(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, Multisign: 5})
	tok := srv.Login(t, user, password)
	dbPath := srv.App.Config.Path(srv.App.Config.Store.Path)
	raw, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER refuse_authorize BEFORE INSERT ON audit WHEN NEW.event = 'authorize'
		BEGIN SELECT RAISE(ABORT, 'audit log unwritable'); END`); err != nil {
		t.Fatal(err)
	}
	r := srv.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1,
		"authData": []map[string]string{{"id": "PIN", "value": pin}}})
	var ar csc.AuthorizeResponse
	_ = json.Unmarshal(r.Body, &ar)
	if r.Status == http.StatusOK || ar.SAD != "" {
		t.Fatalf("authorize with an unwritable audit log: %d %s", r.Status, r.Body)
	}
	var sads int
	if err := raw.QueryRow(`SELECT count(*) FROM sads`).Scan(&sads); err != nil {
		t.Fatal(err)
	}
	if sads != 0 {
		t.Fatalf("%d SADs in the store without their audit row", sads)
	}
	if _, err := raw.Exec(`DROP TRIGGER refuse_authorize`); err != nil {
		t.Fatal(err)
	}
	rssptest.Must(t, srv.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1,
		"authData": []map[string]string{{"id": "PIN", "value": pin}}}))
	if n := srv.AuditCount(t, "authorize", id); n != 1 {
		t.Fatalf("authorize ok rows %d, want 1", n)
	}
}

// Item 6: the approval link (a bearer capability) is in the spool, not in
// the server log, unless [oob] log_links is set for a demo.
func TestApprovalLinkNotLogged(t *testing.T) {
	for _, logLinks := range []bool{false, true} {
		t.Run(fmt.Sprint("log_links=", logLinks), func(t *testing.T) {
			srv := rssptest.Start(t, rssptest.Options{Edit: func(c *config.Config) { c.OOB.LogLinks = logLinks }})
			srv.AddUser(t, user, password)
			id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, OOB: true})
			tok := srv.Login(t, user, password)
			r := srv.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1,
				"authData": []map[string]string{{"id": "PIN", "value": pin}, {"id": "OOB"}}})
			if r.Status != http.StatusAccepted {
				t.Fatalf("authorize: %d %s", r.Status, r.Body)
			}
			m, err := notify.Latest(filepath.Join(srv.Dir, "spool"), notify.Approval, id)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(m.Link)
			capability := u.Query().Get("t")
			if capability == "" {
				t.Fatalf("link %q has no token", m.Link)
			}
			if got := strings.Contains(srv.Logs.String(), capability); got != logLinks {
				t.Fatalf("approval token in the server log: %v, want %v", got, logLinks)
			}
		})
	}
}

// Item 8: TLS 1.2 only with ECDHE and an AEAD; HSTS over HTTPS;
// X-Frame-Options DENY on the approval page.
func TestTLSAndHeaders(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	for _, c := range []struct {
		name  string
		suite uint16
		ok    bool
	}{
		{"ok ECDHE AES-GCM", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{"ok ECDHE ChaCha20", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
		{"fail ECDHE CBC-SHA1", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{"fail ECDHE CBC-SHA1 256", tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{"fail ECDHE CBC-SHA256", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, false},
		{"fail RSA key transport", tls.TLS_RSA_WITH_AES_128_GCM_SHA256, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: srv.CAPool, ServerName: "127.0.0.1",
				MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{c.suite}})
			if err == nil {
				conn.Close()
			}
			if (err == nil) != c.ok {
				t.Fatalf("handshake with %s only: %v, want ok=%v", tls.CipherSuiteName(c.suite), err, c.ok)
			}
		})
	}
	resp, err := srv.Client.Get(srv.URL + "/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(h, "max-age=") {
		t.Errorf("Strict-Transport-Security %q", h)
	}
	resp, err = srv.Client.Get(strings.TrimSuffix(srv.URL, "/csc/v2") + "/oob/approve?t=unknown")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("X-Frame-Options"); h != "DENY" {
		t.Errorf("approval page X-Frame-Options %q, want DENY", h)
	}
}

// TestTrustedProxies: behind a trusted balancer (here the test's client,
// 127.0.0.1), the per-address throttle and the audit log's client address
// take the client from X-Forwarded-For; without trusted_proxies the same
// header is ignored, so a guesser cannot dodge the address throttle by
// writing a new address into each request.
func TestTrustedProxies(t *testing.T) {
	login := func(s *rssptest.Server, xff, name, pw string) rssptest.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/login", strings.NewReader("{}"))
		req.SetBasicAuth(name, pw)
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return rssptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}
	start := func(trusted []string) *rssptest.Server {
		s := rssptest.Start(t, rssptest.Options{Edit: func(c *config.Config) {
			c.Server.TrustedProxies = trusted
			c.Security.ThrottleAccountBurst = -1
			c.Security.ThrottleAddressBurst = 2
			c.Security.ThrottleAddressEvery = config.Duration{Duration: time.Hour}
		}})
		s.AddUser(t, "bob", password)
		return s
	}

	behind := start([]string{"127.0.0.0/8", "::1"})
	for i := range 2 {
		if r := login(behind, "198.51.100.7", fmt.Sprintf("user%d", i), "guess"); r.Status != http.StatusBadRequest {
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Body)
		}
	}
	retryAfter(t, login(behind, "198.51.100.7", "bob", password), http.StatusTooManyRequests)
	// Another client behind the same balancer is not concerned.
	if r := login(behind, "192.0.2.99, 198.51.100.8", "bob", password); r.Status != http.StatusOK {
		t.Errorf("bob from another client: %d %s", r.Status, r.Body)
	}
	var seen bool
	for _, e := range auditRows(t, behind, "login") {
		if e.Result == "ok" {
			seen = true
			if e.ClientAddr != "198.51.100.8" {
				t.Errorf("audit client address %q, want 198.51.100.8", e.ClientAddr)
			}
		}
	}
	if !seen {
		t.Error("no audit row of bob's login")
	}

	// Not trusted: each guess claims a new address, all count as 127.0.0.1.
	direct := start(nil)
	for i := range 2 {
		if r := login(direct, fmt.Sprintf("198.51.100.%d", i), fmt.Sprintf("user%d", i), "guess"); r.Status != http.StatusBadRequest {
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Body)
		}
	}
	retryAfter(t, login(direct, "198.51.100.50", "bob", password), http.StatusTooManyRequests)
}
