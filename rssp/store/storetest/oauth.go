package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// RunOAuth runs the conformance tests of the store's OAuth part
// (store.OAuthStore). open must return a new, empty store on every call;
// RunOAuth closes it when the subtest that opened it ends.
//
//	storetest.RunOAuth(t, func(t *testing.T) store.Store { return openTemp(t) })
func RunOAuth(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("clients", func(t *testing.T) { testOAuthClients(t, open) })
	t.Run("requests", func(t *testing.T) { testOAuthRequests(t, open) })
	t.Run("take request concurrently", func(t *testing.T) { testTakeRequestConcurrently(t, open) })
	t.Run("codes", func(t *testing.T) { testOAuthCodes(t, open) })
	t.Run("consume code concurrently", func(t *testing.T) { testConsumeCodeConcurrently(t, open) })
	t.Run("sessions", func(t *testing.T) { testOAuthSessions(t, open) })
	t.Run("credential tokens", func(t *testing.T) { testCredentialTokens(t, open) })
	t.Run("purge", func(t *testing.T) { testPurgeOAuth(t, open) })
}

// withOAuth opens a store holding alice, bob, alice's credential c1 and two
// clients: public "app" and confidential "svc" acting for alice.
func withOAuth(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	mustCreateUser(t, s, alice)
	mustCreateUser(t, s, bob)
	mustCreateCredential(t, s, fullCredential("c1", alice.ID, t0))
	for _, c := range []store.OAuthClient{publicClient, confidentialClient} {
		if err := s.CreateOAuthClient(t.Context(), c); err != nil {
			t.Fatalf("CreateOAuthClient(%q): %v", c.ID, err)
		}
	}
	return s
}

var (
	publicClient = store.OAuthClient{ID: "app", Name: "Desktop app ✓",
		RedirectURIs: []string{"http://127.0.0.1/callback", "com.example.app:/cb"}, CreatedAt: t0}
	confidentialClient = store.OAuthClient{ID: "svc", Name: "Signing portal", SecretHash: "$argon2id$secret",
		RedirectURIs: []string{"https://portal.example/cb"}, UserID: alice.ID} // zero CreatedAt
)

func normClient(c store.OAuthClient) store.OAuthClient {
	if len(c.RedirectURIs) == 0 {
		c.RedirectURIs = nil
	}
	c.CreatedAt = normTime(c.CreatedAt)
	return c
}

func normRequest(r store.OAuthRequest) store.OAuthRequest {
	r.Params = normBytes(r.Params)
	r.ExpiresAt = normTime(r.ExpiresAt)
	r.CreatedAt = normTime(r.CreatedAt)
	return r
}

func normCode(c store.OAuthCode) store.OAuthCode {
	c.Hashes = normList(c.Hashes)
	c.Details = normBytes(c.Details)
	c.TokenHash = normBytes(c.TokenHash)
	c.ExpiresAt = normTime(c.ExpiresAt)
	c.CreatedAt = normTime(c.CreatedAt)
	return c
}

func normSession(s store.OAuthSession) store.OAuthSession {
	s.AuthTime = normTime(s.AuthTime)
	s.ExpiresAt = normTime(s.ExpiresAt)
	s.CreatedAt = normTime(s.CreatedAt)
	return s
}

func testOAuthClients(t *testing.T, open func(t *testing.T) store.Store) {
	s := withOAuth(t, open)
	noURIs := store.OAuthClient{ID: "bare", Name: "", RedirectURIs: []string{}}
	creates := []struct {
		name    string
		c       store.OAuthClient
		wantErr error
	}{
		{"ok no redirect URIs", noURIs, nil},
		{"fail taken ID", store.OAuthClient{ID: "app", Name: "again"}, store.ErrExists},
		{"fail unknown user", store.OAuthClient{ID: "x", SecretHash: "h", UserID: "u-nobody"}, store.ErrNotFound},
		{"fail empty ID", store.OAuthClient{Name: "nameless"}, errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateOAuthClient", s.CreateOAuthClient(t.Context(), tc.c), tc.wantErr)
		})
	}
	gets := []struct {
		name    string
		id      string
		want    store.OAuthClient
		wantErr error
	}{
		{"ok public", "app", publicClient, nil},
		{"ok confidential", "svc", confidentialClient, nil},
		{"ok bare", "bare", noURIs, nil},
		{"fail unknown", "nope", store.OAuthClient{}, store.ErrNotFound},
		{"fail not created", "x", store.OAuthClient{}, store.ErrNotFound},
	}
	for _, tc := range gets {
		t.Run("get "+tc.name, func(t *testing.T) {
			got, err := s.OAuthClient(t.Context(), tc.id)
			if checkErr(t, "OAuthClient", err, tc.wantErr) && tc.wantErr == nil {
				checkEqual(t, "client", got, normClient(tc.want))
			}
		})
	}
	if !publicClient.Public() || confidentialClient.Public() {
		t.Errorf("Public() wrong")
	}
}

func requestFixture(name string, pushed bool, expires time.Time) store.OAuthRequest {
	return store.OAuthRequest{Hash: sum(name), ClientID: "app", Pushed: pushed, Params: []byte(`{"scope":"` + name + `"}`),
		ExpiresAt: expires, CreatedAt: t0}
}

func testOAuthRequests(t *testing.T, open func(t *testing.T) store.Store) {
	s := withOAuth(t, open)
	now := t0.Add(time.Minute)
	live := requestFixture("live", true, now.Add(time.Minute))
	started := requestFixture("started", false, now.Add(time.Hour))
	started.CreatedAt = time.Time{}
	expired := requestFixture("expired", true, now)
	creates := []struct {
		name    string
		r       store.OAuthRequest
		wantErr error
	}{
		{"ok pushed", live, nil},
		{"ok started", started, nil},
		{"ok expired", expired, nil},
		{"fail taken hash", requestFixture("live", false, now), store.ErrExists},
		{"fail unknown client", func() store.OAuthRequest { r := requestFixture("n1", true, now); r.ClientID = "nope"; return r }(), store.ErrNotFound},
		{"fail no expiry", requestFixture("n2", true, time.Time{}), errInvalid},
		{"fail empty hash", func() store.OAuthRequest { r := requestFixture("n3", true, now); r.Hash = nil; return r }(), errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateOAuthRequest", s.CreateOAuthRequest(t.Context(), tc.r), tc.wantErr)
		})
	}
	t.Run("get ok expired still there", func(t *testing.T) {
		got, err := s.OAuthRequest(t.Context(), expired.Hash)
		if checkErr(t, "OAuthRequest", err, nil) {
			checkEqual(t, "request", got, normRequest(expired))
		}
	})
	takes := []struct {
		name    string
		hash    []byte
		want    store.OAuthRequest
		wantErr error
	}{
		{"ok take", live.Hash, live, nil},
		{"fail take again", live.Hash, store.OAuthRequest{}, store.ErrNotFound},
		{"ok take started", started.Hash, started, nil},
		{"fail expired returns the row", expired.Hash, expired, store.ErrExpired},
		{"fail expired is gone", expired.Hash, store.OAuthRequest{}, store.ErrNotFound},
		{"fail unknown", sum("nope"), store.OAuthRequest{}, store.ErrNotFound},
	}
	for _, tc := range takes {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.TakeOAuthRequest(t.Context(), tc.hash, now)
			if checkErr(t, "TakeOAuthRequest", err, tc.wantErr) && tc.want.Hash != nil {
				checkEqual(t, "request", got, normRequest(tc.want))
			}
			if _, err := s.OAuthRequest(t.Context(), tc.hash); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("OAuthRequest after take: %v, want not found", err)
			}
		})
	}
}

func testTakeRequestConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := withOAuth(t, open)
	r := requestFixture("once", false, t0.Add(time.Hour))
	if err := s.CreateOAuthRequest(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = s.TakeOAuthRequest(t.Context(), r.Hash, t0) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("TakeOAuthRequest: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d takes succeeded, want exactly 1", ok)
	}
}

func codeFixture(name string, expires time.Time) store.OAuthCode {
	return store.OAuthCode{Hash: sum(name), ClientID: "app", UserID: alice.ID, RedirectURI: "http://127.0.0.1:4711/callback",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Scope: "credential", CredentialID: "c1",
		NumSignatures: 2, HashAlgo: "2.16.840.1.101.3.4.2.1", Hashes: [][]byte{sum("d1"), sum("d2")},
		Details: []byte(`[{"type":"credential"}]`), Family: "fam-" + name, ExpiresAt: expires, CreatedAt: t0}
}

func testOAuthCodes(t *testing.T, open func(t *testing.T) store.Store) {
	s := withOAuth(t, open)
	now := t0.Add(time.Minute)
	cred := codeFixture("cred", now.Add(time.Minute))
	svc := store.OAuthCode{Hash: sum("svc"), ClientID: "svc", UserID: alice.ID, CodeChallenge: "x", Scope: "service",
		Hashes: [][]byte{}, Family: "fam-svc", ExpiresAt: now.Add(time.Minute)} // no credential, no hashes, zero CreatedAt
	expired := codeFixture("old", now)
	creates := []struct {
		name    string
		c       store.OAuthCode
		wantErr error
	}{
		{"ok credential", cred, nil},
		{"ok service", svc, nil},
		{"ok expired", expired, nil},
		{"fail taken hash", codeFixture("cred", now), store.ErrExists},
		{"fail unknown client", func() store.OAuthCode { c := codeFixture("n1", now); c.ClientID = "nope"; return c }(), store.ErrNotFound},
		{"fail unknown user", func() store.OAuthCode { c := codeFixture("n2", now); c.UserID = "u-nobody"; return c }(), store.ErrNotFound},
		{"fail unknown credential", func() store.OAuthCode { c := codeFixture("n3", now); c.CredentialID = "c9"; return c }(), store.ErrNotFound},
		{"fail no expiry", codeFixture("n4", time.Time{}), errInvalid},
		{"fail empty hash", func() store.OAuthCode { c := codeFixture("n5", now); c.Hash = nil; return c }(), errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateOAuthCode", s.CreateOAuthCode(t.Context(), tc.c), tc.wantErr)
		})
	}
	used := func(c store.OAuthCode, tok string) store.OAuthCode {
		c.Used, c.TokenHash = true, sum(tok)
		return c
	}
	consumes := []struct {
		name    string
		hash    []byte
		token   string
		want    store.OAuthCode
		wantErr error
	}{
		{"ok consume", cred.Hash, "t1", used(cred, "t1"), nil},
		{"fail reuse returns the first exchange", cred.Hash, "t2", used(cred, "t1"), store.ErrUsed},
		{"ok service", svc.Hash, "t3", used(svc, "t3"), nil},
		{"fail expired", expired.Hash, "t4", expired, store.ErrExpired},
		{"fail expired stays unused", expired.Hash, "t5", expired, store.ErrExpired},
		{"fail unknown", sum("nope"), "t6", store.OAuthCode{}, store.ErrNotFound},
		{"fail empty token hash", cred.Hash, "", store.OAuthCode{}, errInvalid},
	}
	for _, tc := range consumes {
		t.Run(tc.name, func(t *testing.T) {
			var tok []byte
			if tc.token != "" {
				tok = sum(tc.token)
			}
			got, err := s.ConsumeOAuthCode(t.Context(), tc.hash, tok, now)
			if checkErr(t, "ConsumeOAuthCode", err, tc.wantErr) && tc.want.Hash != nil {
				checkEqual(t, "code", got, normCode(tc.want))
			}
		})
	}
	t.Run("fail used is reported after expiry too", func(t *testing.T) {
		got, err := s.ConsumeOAuthCode(t.Context(), cred.Hash, sum("t7"), now.Add(time.Hour))
		if checkErr(t, "ConsumeOAuthCode", err, store.ErrUsed) {
			checkEqual(t, "code", got, normCode(used(cred, "t1")))
		}
	})
}

func testConsumeCodeConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := withOAuth(t, open)
	c := codeFixture("race", t0.Add(time.Hour))
	if err := s.CreateOAuthCode(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	got := make([]store.OAuthCode, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = s.ConsumeOAuthCode(t.Context(), c.Hash, sum(string(rune('a'+i))), t0) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("exchanges %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrUsed):
			t.Errorf("ConsumeOAuthCode: %v", err)
		}
	}
	if winner < 0 {
		t.Fatal("no exchange succeeded")
	}
	for i, err := range errs {
		if err != nil && string(got[i].TokenHash) != string(sum(string(rune('a'+winner)))) {
			t.Errorf("loser %d sees token hash %x, want the winner's", i, got[i].TokenHash)
		}
	}
}

func testOAuthSessions(t *testing.T, open func(t *testing.T) store.Store) {
	s := withOAuth(t, open)
	anon := store.OAuthSession{Hash: sum("anon"), ExpiresAt: t0.Add(time.Minute), CreatedAt: t0}
	in := store.OAuthSession{Hash: sum("in"), UserID: alice.ID, AuthTime: t0, ExpiresAt: t0.Add(time.Minute)}
	creates := []struct {
		name    string
		s       store.OAuthSession
		wantErr error
	}{
		{"ok anonymous", anon, nil},
		{"ok logged in", in, nil},
		{"fail taken hash", anon, store.ErrExists},
		{"fail unknown user", store.OAuthSession{Hash: sum("x"), UserID: "u-nobody", ExpiresAt: t0}, store.ErrNotFound},
		{"fail no expiry", store.OAuthSession{Hash: sum("y")}, errInvalid},
		{"fail empty hash", store.OAuthSession{ExpiresAt: t0}, errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateOAuthSession", s.CreateOAuthSession(t.Context(), tc.s), tc.wantErr)
		})
	}
	for _, want := range []store.OAuthSession{anon, in} {
		got, err := s.OAuthSession(t.Context(), want.Hash)
		if checkErr(t, "OAuthSession", err, nil) {
			checkEqual(t, "session", got, normSession(want))
		}
	}
	deletes := []struct {
		name    string
		hash    []byte
		wantErr error
	}{
		{"ok delete", anon.Hash, nil},
		{"fail delete again", anon.Hash, store.ErrNotFound},
		{"fail unknown", sum("nope"), store.ErrNotFound},
	}
	for _, tc := range deletes {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "DeleteOAuthSession", s.DeleteOAuthSession(t.Context(), tc.hash), tc.wantErr)
			if _, err := s.OAuthSession(t.Context(), tc.hash); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("OAuthSession after delete: %v", err)
			}
		})
	}
	if _, err := s.OAuthSession(t.Context(), in.Hash); err != nil {
		t.Errorf("other session: %v", err)
	}
}

func testCredentialTokens(t *testing.T, open func(t *testing.T) store.Store) {
	s := withOAuth(t, open)
	ct := store.CredentialToken{TokenHash: sum("tok"), CredentialID: "c1", ExpiresAt: t0.Add(time.Minute)}
	creates := []struct {
		name    string
		ct      store.CredentialToken
		wantErr error
	}{
		{"ok", ct, nil},
		{"fail taken", ct, store.ErrExists},
		{"fail unknown credential", store.CredentialToken{TokenHash: sum("x"), CredentialID: "c9", ExpiresAt: t0}, store.ErrNotFound},
		{"fail no credential", store.CredentialToken{TokenHash: sum("y"), ExpiresAt: t0}, errInvalid},
		{"fail no expiry", store.CredentialToken{TokenHash: sum("z"), CredentialID: "c1"}, errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateCredentialToken", s.CreateCredentialToken(t.Context(), tc.ct), tc.wantErr)
		})
	}
	got, err := s.CredentialToken(t.Context(), ct.TokenHash)
	if checkErr(t, "CredentialToken", err, nil) {
		want := ct
		want.ExpiresAt = normTime(want.ExpiresAt)
		checkEqual(t, "credential token", got, want)
	}
	_, err = s.CredentialToken(t.Context(), sum("nope"))
	checkErr(t, "CredentialToken unknown", err, store.ErrNotFound)
}

func testPurgeOAuth(t *testing.T, open func(t *testing.T) store.Store) {
	s := withOAuth(t, open)
	now := t0.Add(time.Hour)
	ctx := t.Context()
	mustOK := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for _, tc := range []struct {
		name string
		exp  time.Time
	}{{"gone", now}, {"kept", now.Add(time.Nanosecond)}} {
		mustOK("request", s.CreateOAuthRequest(ctx, requestFixture(tc.name, true, tc.exp)))
		mustOK("code", s.CreateOAuthCode(ctx, codeFixture(tc.name, tc.exp)))
		mustOK("session", s.CreateOAuthSession(ctx, store.OAuthSession{Hash: sum(tc.name), ExpiresAt: tc.exp}))
		mustOK("credential token", s.CreateCredentialToken(ctx, store.CredentialToken{TokenHash: sum(tc.name), CredentialID: "c1", ExpiresAt: tc.exp}))
	}
	mustOK("PurgeOAuth", s.PurgeOAuth(ctx, now))
	for _, tc := range []struct {
		name    string
		wantErr error
	}{{"gone", store.ErrNotFound}, {"kept", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.OAuthRequest(ctx, sum(tc.name))
			checkErr(t, "request", err, tc.wantErr)
			_, err = s.ConsumeOAuthCode(ctx, sum(tc.name), sum("t"), t0)
			checkErr(t, "code", err, tc.wantErr)
			_, err = s.OAuthSession(ctx, sum(tc.name))
			checkErr(t, "session", err, tc.wantErr)
			_, err = s.CredentialToken(ctx, sum(tc.name))
			checkErr(t, "credential token", err, tc.wantErr)
		})
	}
	// The credential's SADs and the users are untouched.
	if _, err := s.Credential(ctx, "c1"); err != nil {
		t.Errorf("credential after purge: %v", err)
	}
}
