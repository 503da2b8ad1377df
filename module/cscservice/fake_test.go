package cscservice_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
)

// memStore is an in-memory cscclient.SecretStore.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Get(_ context.Context, service, user string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[service+"\x00"+user]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return b, nil
}

func (s *memStore) Set(_ context.Context, service, user string, secret []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[service+"\x00"+user] = secret
	return nil
}

func (s *memStore) Delete(_ context.Context, service, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, service+"\x00"+user)
	return nil
}

// fakeCSC is a small CSC v2 server: one credential whose listing carries
// no credentialInfo, a PIN named "CODE" plus an out-of-band approval.
type fakeCSC struct {
	t    *testing.T
	cert []byte

	mu        sync.Mutex
	decision  string // "approve", "deny", "never"
	checks    int
	authData  []csc.AuthData
	infoCalls int
}

func newFakeCSC(t *testing.T) (*fakeCSC, *httptest.Server) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCSC{t: t, cert: der, decision: "approve"}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeCSC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	method := strings.TrimPrefix(r.URL.Path, "/csc/v2/")
	if method != "info" && r.Header.Get("Authorization") != "Bearer good-token" {
		reply(401, csc.Error{Code: "invalid_token", Description: "bad token"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch method {
	case "info":
		reply(200, csc.InfoResponse{Specs: csc.SpecV2, Name: "fake", AuthType: []string{"basic"},
			Methods:        []string{"credentials/list", "credentials/info", "credentials/authorize"},
			SignAlgorithms: &csc.SignAlgorithms{Algos: []string{csc.OIDECDSAWithSHA256, csc.OIDSHA256WithRSA}}})
	case "credentials/list":
		reply(200, csc.CredentialsListResponse{CredentialIDs: []string{"c1"}})
	case "credentials/info":
		f.infoCalls++
		reply(200, csc.CredentialInfo{
			Description: "fake key",
			Key:         csc.KeyInfo{Status: "enabled", Algo: []string{csc.OIDECDSAWithSHA256, csc.OIDECDSAWithSHA384}, Len: 256, Curve: csc.OIDP256},
			Cert:        &csc.CertInfo{Status: "valid", Certificates: []csc.Bytes{f.cert}},
			Auth: &csc.AuthInfo{Mode: "explicit", Expression: "CODE AND OOB", Objects: []csc.AuthObject{
				{Type: csc.AuthPassword, ID: "CODE", Format: "N", Label: "Code"},
				{Type: csc.AuthPasswordOOB, ID: "OOB"},
			}},
			SCAL: "2", Multisign: 1,
		})
	case "credentials/authorize":
		var in csc.AuthorizeRequest
		_ = json.Unmarshal(body, &in)
		f.authData = in.AuthData
		if len(in.AuthData) != 1 || in.AuthData[0].Value != "1234" {
			reply(400, csc.Error{Code: "invalid_pin", Description: "Wrong PIN: 4 attempts left"})
			return
		}
		reply(202, csc.AuthorizeResponse{Handle: "h1"})
	case "credentials/authorizeCheck":
		f.checks++
		switch {
		case f.decision == "deny":
			reply(400, csc.Error{Code: "access_denied", Description: "The user denied the authorization"})
		case f.decision == "never" || f.checks < 2:
			reply(202, csc.AuthorizeResponse{Handle: "h1"})
		default:
			reply(200, csc.AuthorizeResponse{SAD: "sad-1", ExpiresIn: 60})
		}
	default:
		reply(400, csc.Error{Code: "invalid_request", Description: "unknown method"})
	}
}

func fakeService(t *testing.T, url string, store cscclient.SecretStore) *cscservice.Service {
	t.Helper()
	s, err := cscservice.Open(config.Service{
		Name: "Fake", URL: url + "/csc/v2", Auth: config.AuthBasic, Username: "alice",
		Timeout: 3 * time.Second, ListTimeout: 3 * time.Second,
	}, nil, cscservice.WithSecretStore(store),
		cscservice.WithPollOptions(cscclient.PollOptions{Interval: 20 * time.Millisecond, MaxInterval: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// loggedIn returns a store holding a valid access token for the service
// at url (its base URL, ending in /csc/v2).
func loggedIn(url string) *memStore {
	store := &memStore{}
	b, _ := json.Marshal(cscclient.Token{AccessToken: "good-token", Expiry: time.Now().Add(time.Hour)})
	_ = store.Set(context.Background(), url, "alice", b)
	return store
}

func TestFakeListFallsBackToInfo(t *testing.T) {
	f, srv := newFakeCSC(t)
	s := fakeService(t, srv.URL, loggedIn(srv.URL+"/csc/v2"))
	ctx := context.Background()
	if err := s.Login(ctx, false); err != nil {
		t.Fatalf("Login: %v", err)
	}
	creds, err := s.ListCredentials(ctx)
	if err != nil {
		t.Fatalf("ListCredentials: %v", err)
	}
	if len(creds) != 1 || f.infoCalls != 1 {
		t.Fatalf("creds = %d, info calls = %d; want 1, 1", len(creds), f.infoCalls)
	}
	c := creds[0]
	want := module.Credential{ID: "c1", Description: "fake key", Enabled: true, KeyLen: 256, CurveOID: csc.OIDP256,
		SCAL: 2, Multisign: 1, Auth: module.AuthPIN, PINLabel: "Code"}
	if c.ID != want.ID || c.Description != want.Description || c.Enabled != want.Enabled || c.KeyLen != want.KeyLen ||
		c.CurveOID != want.CurveOID || c.SCAL != want.SCAL || c.Multisign != want.Multisign || c.Auth != want.Auth ||
		c.PINLabel != want.PINLabel || len(c.Certificates) != 1 {
		t.Errorf("credential = %+v, want %+v with 1 certificate", c, want)
	}
	// key/algo ∩ info.signAlgorithms.
	if !slices.Equal(c.KeyAlgos, []string{csc.OIDECDSAWithSHA256}) {
		t.Errorf("KeyAlgos = %v", c.KeyAlgos)
	}
}

func TestFakeAuthorizeOutOfBand(t *testing.T) {
	tests := []struct {
		name     string
		decision string
		pin      string
		want     error // nil: a SAD
	}{
		{"ok approved after polling", "approve", "1234", nil},
		{"fail denied", "deny", "1234", module.ErrCanceled},
		{"fail not approved in time", "never", "1234", module.ErrCanceled},
		{"fail wrong PIN", "approve", "0000", module.ErrPINIncorrect},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFakeCSC(t)
			f.decision = tc.decision
			s := fakeService(t, srv.URL, loggedIn(srv.URL+"/csc/v2"))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := s.ListCredentials(ctx); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			sad, err := s.Authorize(ctx, module.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1,
				Hashes: [][]byte{make([]byte, 32)}, HashAlgOID: csc.OIDSHA256, PIN: []byte(tc.pin), PINID: "CODE"})
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Authorize took %v, beyond the context's deadline", took)
			}
			if len(f.authData) != 1 || f.authData[0].ID != "CODE" {
				t.Errorf("authData = %+v, want the PIN under ID CODE", f.authData)
			}
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Authorize err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if sad.Value != "sad-1" || sad.Remaining != 1 || time.Until(sad.ExpiresAt) < 50*time.Second {
				t.Errorf("SAD = value %q remaining %d expires %v", sad.Value, sad.Remaining, sad.ExpiresAt)
			}
		})
	}
}

func TestFakeNotLoggedIn(t *testing.T) {
	_, srv := newFakeCSC(t)
	s := fakeService(t, srv.URL, &memStore{})
	ctx := context.Background()
	err := s.Login(ctx, true)
	if !errors.Is(err, module.ErrNotLoggedIn) || !strings.Contains(err.Error(), "csctoken login --service Fake") {
		t.Fatalf("Login = %v, want ErrNotLoggedIn telling to run csctoken login", err)
	}
	if _, err := s.ListCredentials(ctx); !errors.Is(err, module.ErrNotLoggedIn) {
		t.Fatalf("ListCredentials = %v, want ErrNotLoggedIn", err)
	}
	// A token the server refuses, without a refresh token, is no better.
	store := &memStore{}
	b, _ := json.Marshal(cscclient.Token{AccessToken: "stale", Expiry: time.Now().Add(time.Hour)})
	_ = store.Set(ctx, srv.URL+"/csc/v2", "alice", b)
	s = fakeService(t, srv.URL, store)
	if _, err := s.ListCredentials(ctx); !errors.Is(err, module.ErrNotLoggedIn) {
		t.Fatalf("ListCredentials with a refused token = %v, want ErrNotLoggedIn", err)
	}
}

// TestFakeStateless: the adapter keeps no state of the credentials: a new
// process's service authorizes with the PIN object the request names (the
// module knows it from its listing or cache) without credentials/info.
func TestFakeStateless(t *testing.T) {
	f, srv := newFakeCSC(t)
	store := loggedIn(srv.URL + "/csc/v2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	creds, err := fakeService(t, srv.URL, store).ListCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 || creds[0].PINID != "CODE" {
		t.Fatalf("listed %+v, want the PIN's ID CODE", creds)
	}
	s := fakeService(t, srv.URL, store)
	f.mu.Lock()
	before := f.infoCalls
	f.mu.Unlock()
	if _, err := s.Authorize(ctx, module.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1, PIN: []byte("1234"), PINID: creds[0].PINID}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.infoCalls != before || len(f.authData) != 1 || f.authData[0].ID != "CODE" {
		t.Fatalf("credentials/info calls %d → %d, authData %+v", before, f.infoCalls, f.authData)
	}
}
