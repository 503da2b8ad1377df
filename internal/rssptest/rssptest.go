// Package rssptest starts a real RSSP for tests: a setup written by
// app.Init in a temporary directory, served over TLS on 127.0.0.1 on a
// random port, stopped by t.Cleanup.
package rssptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/softhsmtest"
	"github.com/csctoken/csctoken/rssp/app"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/sqlite"
)

// Backend selects where the test server keeps keys.
type Backend string

const (
	Soft   Backend = "soft"
	PKCS11 Backend = "pkcs11"
)

// Server is a running RSSP.
type Server struct {
	App    *app.App
	Dir    string
	URL    string // base URL, ending in /csc/v2
	Client *http.Client
	CAPool *x509.CertPool     // trust root of the TLS certificate
	Logs   *bytes.Buffer      // everything the server logged
	Token  *softhsmtest.Token // the SoftHSM2 token of a PKCS11 server, else nil

	stop     context.CancelFunc
	done     chan error
	stopOnce sync.Once
	stopErr  error
}

// Stop stops the server as SIGTERM does (app.Serve's graceful stop) and
// returns what Serve returned; later calls return the same. The test's
// cleanup calls it too.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stop()
		select {
		case s.stopErr = <-s.done:
		case <-time.After(30 * time.Second):
			s.stopErr = errors.New("rssptest: the server did not stop within 30s")
		}
	})
	return s.stopErr
}

// Options tune the test server.
type Options struct {
	Backend Backend
	// Name names the service and its CAs ("NAME Root CA", "NAME Issuing
	// CA"); default "csctoken test RSSP". Two servers of one test with
	// different names have CAs that a TLS CertificateRequest tells apart.
	Name string
	// Edit may change the config before the server opens.
	Edit func(*config.Config)
	// Localhost makes the public URL https://localhost:PORT instead of
	// https://127.0.0.1:PORT: a host name, which WebAuthn (security
	// keys) needs as its relying party ID.
	Localhost bool
}

type syncBuf struct {
	mu  chanMutex
	buf *bytes.Buffer
}

type chanMutex chan struct{}

func (m chanMutex) lock()   { m <- struct{}{} }
func (m chanMutex) unlock() { <-m }

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.lock()
	defer b.mu.unlock()
	return b.buf.Write(p)
}

// Start starts a server and registers its shutdown with t.Cleanup.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	dir := t.TempDir()
	name := o.Name
	if name == "" {
		name = "csctoken test RSSP"
	}
	init := app.InitOptions{Listen: "127.0.0.1:0", Name: name}
	var tok *softhsmtest.Token
	if o.Backend == PKCS11 {
		tok = softhsmtest.New(t)
		pinFile := filepath.Join(dir, "hsm-pin")
		if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		init.PKCS11Module, init.PKCS11Token, init.PKCS11PINFile = tok.ModulePath, tok.Label, pinFile
	}
	setup := filepath.Join(dir, "rssp")
	res, err := app.Init(context.Background(), setup, init)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	cfg, err := config.Load(res.Config)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	// Cheap argon2 in tests; the production cost is measured in benchmarks.
	cfg.Security.Argon2Time, cfg.Security.Argon2Memory = 1, 64
	if o.Edit != nil {
		o.Edit(&cfg)
	}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(&syncBuf{mu: make(chanMutex, 1), buf: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	ln, err := a.Listen()
	if err != nil {
		a.Close()
		t.Fatalf("listen: %v", err)
	}
	if o.Localhost {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		a.Config.PublicURL = "https://localhost:" + port
		if err := a.OAuth.SetIssuer(a.Config.PublicURL); err != nil {
			ln.Close()
			a.Close()
			t.Fatalf("issuer: %v", err)
		}
		a.Service.SetPublicURL(a.Config.PublicURL)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(res.TLSCA)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("tls-ca.pem: %v", err)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 128,
		ForceAttemptHTTP2:   true,
	}
	s := &Server{
		App: a, Dir: setup, URL: "https://" + ln.Addr().String() + "/csc/v2",
		Client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		CAPool: pool, Logs: logs, Token: tok, stop: cancel, done: done,
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
		tr.CloseIdleConnections()
		a.Close()
	})
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string {
	return strings.TrimSuffix(strings.TrimPrefix(s.URL, "https://"), "/csc/v2")
}

// AddUser creates a user.
func (s *Server) AddUser(t testing.TB, name, password string) {
	t.Helper()
	if _, err := s.App.Service.AddUser(context.Background(), name, password); err != nil {
		t.Fatalf("add user: %v", err)
	}
}

// AddCredential enrols a credential and returns its ID (and TOTP URI).
func (s *Server) AddCredential(t testing.TB, spec service.CredentialSpec) (string, string) {
	t.Helper()
	c, uri, err := s.App.Service.AddCredential(context.Background(), spec)
	if err != nil {
		t.Fatalf("add credential: %v", err)
	}
	return c.ID, uri
}

// Response is a raw answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Error decodes a CSC error body.
func (r Response) Error() csc.Error {
	var e csc.Error
	_ = json.Unmarshal(r.Body, &e)
	return e
}

// Decode decodes the body into v.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Do posts a raw body to method with the given Authorization header value.
func (s *Server) Do(t testing.TB, method, auth string, body []byte) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/"+method, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Call posts v as JSON with a Bearer token ("" for none).
func (s *Server) Call(t testing.TB, method, token string, v any) Response {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return s.Do(t, method, auth, b)
}

// Login logs in with Basic auth and returns the access token.
func (s *Server) Login(t testing.TB, user, password string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/login", strings.NewReader("{}"))
	req.SetBasicAuth(user, password)
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lr csc.LoginResponse
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil {
		t.Fatal(err)
	}
	return lr.AccessToken
}

// KeyTypes lists the key types every backend must serve.
var KeyTypes = keystore.KeyTypes

// Must fails the test on a non-200 answer.
func Must(t testing.TB, r Response) Response {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	return r
}

// AuditEvents returns the audit rows of event for credID with result "ok",
// oldest first, read from the SQLite database at dbPath (a running server's
// too: WAL readers do not disturb it).
func AuditEvents(t testing.TB, dbPath, event, credID string) []store.AuditEvent {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows []store.AuditEvent
	for after := int64(0); ; {
		evs, err := db.AuditEvents(ctx, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return rows
		}
		for _, e := range evs {
			if e.Event == event && e.CredentialID == credID && e.Result == "ok" {
				rows = append(rows, e)
			}
			after = e.Seq
		}
	}
}

// AuditCount counts the server's audit rows of event for credID with
// result "ok".
func (s *Server) AuditCount(t testing.TB, event, credID string) int {
	t.Helper()
	return len(AuditEvents(t, s.App.Config.Path(s.App.Config.Store.Path), event, credID))
}
