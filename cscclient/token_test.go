package cscclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
)

// memStore is an in-memory SecretStore.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Get(_ context.Context, service, user string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[service+"|"+user]
	if !ok {
		return nil, fmt.Errorf("none: %w", fs.ErrNotExist)
	}
	return b, nil
}

func (s *memStore) Set(_ context.Context, service, user string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[service+"|"+user] = bytes.Clone(b)
	return nil
}

func (s *memStore) Delete(_ context.Context, service, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, service+"|"+user)
	return nil
}

func setNow(t *testing.T, now time.Time) *time.Time {
	t.Helper()
	cur := now
	old := timeNow
	timeNow = func() time.Time { return cur }
	t.Cleanup(func() { timeNow = old })
	return &cur
}

func TestSession(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	authErr := &Error{Method: "auth/login", StatusCode: 400, Code: csc.ErrInvalidGrant}
	netErr := &Error{Method: "auth/login", kinds: []error{ErrTransport}, Err: errors.New("connection reset")}
	tests := []struct {
		name        string
		stored      *Token
		refreshErr  error
		login       bool
		wantToken   string
		wantErr     error
		wantRefresh int
		wantLogin   int
		wantStored  string // access token left in the store ("" = none)
	}{
		{name: "ok cached valid token", stored: &Token{AccessToken: "A", RefreshToken: "R", Expiry: t0.Add(time.Hour)},
			wantToken: "A", wantStored: "A"},
		{name: "ok expiring within the skew delta is refreshed",
			stored:    &Token{AccessToken: "A", RefreshToken: "R", Expiry: t0.Add(5 * time.Second)},
			wantToken: "A2", wantRefresh: 1, wantStored: "A2"},
		{name: "ok token without expiry never refreshes", stored: &Token{AccessToken: "A", RefreshToken: "R"},
			wantToken: "A", wantStored: "A"},
		{name: "ok refresh refused, login fallback",
			stored:     &Token{AccessToken: "A", RefreshToken: "R", Expiry: t0.Add(-time.Minute)},
			refreshErr: authErr, login: true, wantToken: "L", wantRefresh: 1, wantLogin: 1, wantStored: "L"},
		{name: "fail refresh refused, no login",
			stored:     &Token{AccessToken: "A", RefreshToken: "R", Expiry: t0.Add(-time.Minute)},
			refreshErr: authErr, wantErr: ErrLoginRequired, wantRefresh: 1},
		{name: "fail refresh unreachable keeps the stored token",
			stored:     &Token{AccessToken: "A", RefreshToken: "R", Expiry: t0.Add(-time.Minute)},
			refreshErr: netErr, login: true, wantErr: ErrTransport, wantRefresh: 1, wantStored: "A"},
		{name: "fail nothing stored, no login", wantErr: ErrLoginRequired},
		{name: "ok nothing stored, login", login: true, wantToken: "L", wantLogin: 1, wantStored: "L"},
		{name: "fail expired, no refresh token",
			stored:  &Token{AccessToken: "A", Expiry: t0.Add(-time.Minute)},
			wantErr: ErrLoginRequired, wantStored: "A"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setNow(t, t0)
			store := newMemStore()
			if tc.stored != nil {
				b, _ := json.Marshal(tc.stored)
				store.Set(context.Background(), "svc", "alice", b)
			}
			var refreshes, logins int
			cfg := SessionConfig{Service: "svc", User: "alice", Store: store,
				Refresh: func(ctx context.Context, rt string) (*Token, error) {
					refreshes++
					if rt != "R" {
						t.Errorf("refresh token %q", rt)
					}
					if tc.refreshErr != nil {
						return nil, tc.refreshErr
					}
					return &Token{AccessToken: "A2", Expiry: t0.Add(time.Hour)}, nil
				}}
			if tc.login {
				cfg.Login = func(ctx context.Context) (*Token, error) {
					logins++
					return &Token{AccessToken: "L", RefreshToken: "LR", Expiry: t0.Add(time.Hour)}, nil
				}
			}
			s := NewSession(cfg)
			tok, err := s.Token(context.Background())
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			} else if err != nil || tok.AccessToken != tc.wantToken {
				t.Fatalf("token %v, err %v", tok, err)
			}
			if refreshes != tc.wantRefresh || logins != tc.wantLogin {
				t.Errorf("refreshes %d, logins %d", refreshes, logins)
			}
			b, err := store.Get(context.Background(), "svc", "alice")
			got := ""
			if err == nil {
				var st Token
				json.Unmarshal(b, &st)
				got = st.AccessToken
				if tc.wantRefresh > 0 && tc.wantStored == "A2" && st.RefreshToken != "R" {
					t.Errorf("refresh token not kept: %+v", st)
				}
			}
			if got != tc.wantStored {
				t.Errorf("stored %q, want %q", got, tc.wantStored)
			}
		})
	}
}

// TestSessionSingleFlight: many callers on an expired token cause one
// refresh; a waiting caller honours its context.
func TestSessionSingleFlight(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	setNow(t, t0)
	var refreshes atomic.Int32
	release := make(chan struct{})
	s := NewSession(SessionConfig{Refresh: func(ctx context.Context, rt string) (*Token, error) {
		refreshes.Add(1)
		<-release
		return &Token{AccessToken: "new", Expiry: t0.Add(time.Hour)}, nil
	}})
	s.Set(context.Background(), &Token{AccessToken: "old", RefreshToken: "R", Expiry: t0.Add(-time.Second)})

	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := s.Token(context.Background())
			if err != nil || tok.AccessToken != "new" {
				t.Errorf("token %v, err %v", tok, err)
			}
		}()
	}
	// A caller with a short deadline gives up while the refresh runs.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for refreshes.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting caller: err = %v", err)
	}
	close(release)
	wg.Wait()
	if n := refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
}

// TestSessionSharedStore: two processes share a store and the server
// rotates refresh tokens; the second process takes the first one's new
// token from the store instead of presenting the old refresh token.
func TestSessionSharedStore(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	now := setNow(t, t0)
	var mu sync.Mutex
	live := "R1" // the only refresh token the server accepts
	n := 1
	refresh := func(ctx context.Context, rt string) (*Token, error) {
		mu.Lock()
		defer mu.Unlock()
		if rt != live {
			return nil, &Error{Method: "auth/login", StatusCode: 401, Code: csc.ErrInvalidToken}
		}
		n++
		live = fmt.Sprintf("R%d", n)
		return &Token{AccessToken: fmt.Sprintf("A%d", n), RefreshToken: live, Expiry: timeNow().Add(time.Hour)}, nil
	}
	store := newMemStore()
	ctx := context.Background()
	a := NewSession(SessionConfig{Service: "svc", User: "u", Store: store, Refresh: refresh})
	b := NewSession(SessionConfig{Service: "svc", User: "u", Store: store, Refresh: refresh})
	a.Set(ctx, &Token{AccessToken: "A1", RefreshToken: "R1", Expiry: t0.Add(time.Hour)})
	if tok, err := b.Token(ctx); err != nil || tok.AccessToken != "A1" {
		t.Fatalf("b: %v %v", tok, err)
	}
	*now = t0.Add(2 * time.Hour) // both expired
	if tok, err := a.Token(ctx); err != nil || tok.AccessToken != "A2" {
		t.Fatalf("a refresh: %v %v", tok, err)
	}
	if tok, err := b.Token(ctx); err != nil || tok.AccessToken != "A2" {
		t.Fatalf("b after a's refresh: %v %v", tok, err)
	}
	if n != 2 {
		t.Fatalf("%d refreshes, want 1", n-1)
	}
}

// TestBasicSessionOverHTTP: login, a 401 on an idempotent call invalidates
// the token, the session refreshes, the call is retried once; signHash is
// not retried on a 401.
func TestBasicSessionOverHTTP(t *testing.T) {
	var mu sync.Mutex
	current := "" // the access token the server accepts
	n := 0
	var listCalls, signCalls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		mu.Lock()
		defer mu.Unlock()
		switch strings.TrimPrefix(r.URL.Path, "/csc/v2/") {
		case "auth/login":
			var req csc.LoginRequest
			json.Unmarshal(body, &req)
			u, p, basic := r.BasicAuth()
			switch {
			case basic && u == "alice" && p == "pw":
			case !basic && req.RefreshToken == "RT":
			default:
				w.WriteHeader(400)
				io.WriteString(w, `{"error":"authentication_error"}`)
				return
			}
			n++
			current = fmt.Sprintf("AT%d", n)
			fmt.Fprintf(w, `{"access_token":%q,"refresh_token":"RT","expires_in":3600}`, current)
		case "credentials/list", "signatures/signHash":
			if r.URL.Path == "/csc/v2/credentials/list" {
				listCalls.Add(1)
			} else {
				signCalls.Add(1)
			}
			if r.Header.Get("Authorization") != "Bearer "+current {
				w.WriteHeader(401)
				io.WriteString(w, `{"error":"invalid_token"}`)
				return
			}
			if r.URL.Path == "/csc/v2/credentials/list" {
				io.WriteString(w, `{"credentialIDs":["c1"]}`)
			} else {
				io.WriteString(w, callSignHash.goodBody())
			}
		}
	}))
	t.Cleanup(srv.Close)
	ctx := testCtx(t)
	c := mustClient(t, srv.URL+"/csc/v2")
	store := newMemStore()
	s := c.NewBasicSession("alice", store, nil)
	c.SetTokenSource(s)

	if _, err := c.ListCredentials(ctx, nil); !errors.Is(err, ErrLoginRequired) {
		t.Fatalf("before login: err = %v", err)
	}
	if listCalls.Load() != 0 {
		t.Fatalf("a request went out without a token")
	}
	tok, err := c.LoginToken(ctx, "alice", "pw", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListCredentials(ctx, nil); err != nil {
		t.Fatalf("list: %v", err)
	}
	// The server forgets the token (restart): list is retried after a refresh.
	mu.Lock()
	current = "revoked"
	mu.Unlock()
	listCalls.Store(0)
	if _, err := c.ListCredentials(ctx, nil); err != nil {
		t.Fatalf("list after revocation: %v", err)
	}
	if listCalls.Load() != 2 {
		t.Fatalf("%d list calls, want 2", listCalls.Load())
	}
	// signHash is not retried on 401, but the next call has a fresh token.
	mu.Lock()
	current = "revoked"
	mu.Unlock()
	if err := callSignHash.run(ctx, c); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("signHash: err = %v", err)
	}
	if err := callSignHash.run(ctx, c); err != nil {
		t.Fatalf("signHash after refresh: %v", err)
	}
	if signCalls.Load() != 2 {
		t.Fatalf("%d signHash calls", signCalls.Load())
	}
	// A second process finds the token in the store.
	s2 := c.NewBasicSession("alice", store, nil)
	if tok, err := s2.Token(ctx); err != nil || tok.AccessToken == "" {
		t.Fatalf("stored token: %v %v", tok, err)
	}
}

func TestLogout(t *testing.T) {
	var revoked []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req csc.RevokeRequest
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &req)
		mu.Lock()
		revoked = append(revoked, req.TokenTypeHint+"="+req.Token+" auth="+r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	c := mustClient(t, srv.URL+"/csc/v2")
	store := newMemStore()
	s := c.NewBasicSession("alice", store, nil)
	c.SetTokenSource(s)
	ctx := testCtx(t)
	s.Set(ctx, &Token{AccessToken: "AT", RefreshToken: "RT"})
	if err := c.Logout(ctx, s); err != nil {
		t.Fatal(err)
	}
	want := []string{"refresh_token=RT auth=Bearer AT", "access_token=AT auth=Bearer AT"}
	if strings.Join(revoked, ";") != strings.Join(want, ";") {
		t.Fatalf("revoked %v", revoked)
	}
	if _, err := store.Get(ctx, c.BaseURL(), "alice"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("token still stored: %v", err)
	}
}

// TestTokenRedaction: a Token printed or logged shows no secret.
func TestTokenRedaction(t *testing.T) {
	tok := Token{AccessToken: "sekrit-access", RefreshToken: "sekrit-refresh", Expiry: time.Unix(0, 0)}
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	l.Info("x", "tok", tok, "ptr", &tok)
	out := fmt.Sprintf("%v %+v %#v %s", tok, &tok, tok, tok) + buf.String()
	if strings.Contains(out, "sekrit") {
		t.Fatalf("secret leaked: %s", out)
	}
}

// TestNothingSecretLogged: with debug logging on, a login, an
// authorization and a signature leave no password, token, PIN or SAD in the
// log or in the errors.
func TestNothingSecretLogged(t *testing.T) {
	secrets := []string{"pw-SECRET", "AT-SECRET", "RT-SECRET", "PIN-SECRET", "SAD-SECRET"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch strings.TrimPrefix(r.URL.Path, "/csc/v2/") {
		case "auth/login":
			io.WriteString(w, `{"access_token":"AT-SECRET","refresh_token":"RT-SECRET"}`)
		case "credentials/authorize":
			io.WriteString(w, `{"SAD":"SAD-SECRET","expiresIn":"not a number"}`) // malformed: error path
		case "signatures/signHash":
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid_request","error_description":"SAD expired"}`)
		}
	}))
	t.Cleanup(srv.Close)
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := mustClient(t, srv.URL+"/csc/v2", WithLogger(l))
	ctx := testCtx(t)
	s := c.NewBasicSession("alice", newMemStore(), func(context.Context) (string, error) { return "pw-SECRET", nil })
	c.SetTokenSource(s)
	var errs []string
	_, err := c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: "c", NumSignatures: 1,
		AuthData: []csc.AuthData{{ID: "PIN", Value: "PIN-SECRET"}}})
	if !errors.Is(err, ErrBadResponse) {
		t.Fatalf("authorize: %v", err)
	}
	errs = append(errs, err.Error())
	_, err = c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c", SAD: "SAD-SECRET", Hashes: []csc.Bytes{testHash},
		SignAlgo: csc.OIDSHA256WithRSA})
	if !errors.Is(err, ErrInvalidSAD) {
		t.Fatalf("signHash: %v", err)
	}
	errs = append(errs, err.Error())
	out := buf.String() + strings.Join(errs, "\n")
	for _, sec := range secrets {
		if strings.Contains(out, sec) {
			t.Errorf("%s leaked:\n%s", sec, out)
		}
	}
	if !strings.Contains(buf.String(), "signatures/signHash") {
		t.Errorf("nothing logged: %s", buf.String())
	}
}
