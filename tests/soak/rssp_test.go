package soak

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // PRAGMA integrity_check on the server's file

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/testbin"
)

const (
	user     = "alice"
	password = "soak password 8d2f"
	pin      = "482915"
	label    = "soak EC"
	// multisign is the SAD size the clients authorize.
	multisign = 10
)

var workDir string

func TestMain(m *testing.M) {
	var err error
	if _, workDir, err = testbin.Dirs(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// soakTime is the length of a load phase.
func soakTime(t *testing.T) time.Duration {
	if v := os.Getenv("CSCTOKEN_SOAK_TIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CSCTOKEN_SOAK_TIME: %v", err)
		}
		return d
	}
	return 3 * time.Second
}

func envInt(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	return def
}

// rsspBin is the rssp under test.
func rsspBin(t *testing.T) string {
	if p := os.Getenv("CSCTOKEN_SOAK_RSSP"); p != "" {
		return p
	}
	return testbin.Go(t, "rssp", "./cmd/rssp")
}

// server is an rssp process over a setup directory.
type server struct {
	bin, dir, cfg, addr string
	credID              string
	client              *http.Client
	cmd                 *exec.Cmd
	exited              chan struct{}
	logs                *bytes.Buffer
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newServer writes a setup into dir (rssp init, with initArgs such as a
// PKCS#11 backend), enrols alice with an EC credential, and starts the
// server.
func newServer(t *testing.T, dir string, initArgs ...string) *server {
	t.Helper()
	s := &server{bin: rsspBin(t), dir: dir, cfg: filepath.Join(dir, "rssp.toml"), addr: freePort(t)}
	s.run(t, "", append([]string{"init", "--dir", dir, "--listen", s.addr}, initArgs...)...)
	s.run(t, password+"\n", "admin", "--config", s.cfg, "user", "add", user, "--password-stdin")
	s.credID = strings.TrimSpace(s.run(t, pin+"\n", "admin", "--config", s.cfg, "credential", "add", "--user", user,
		"--key", "ec-p256", "--pin-stdin", "--multisign", strconv.Itoa(multisign), "--description", label))
	pem, err := os.ReadFile(filepath.Join(dir, "tls-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 256, ForceAttemptHTTP2: true,
	}}
	s.start(t)
	t.Cleanup(func() { s.stop(t) })
	return s
}

// run runs an rssp command and returns its stdout.
func (s *server) run(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := testbin.Run(testbin.Cmd{Name: s.bin, Args: args, Stdin: stdin, Limit: time.Minute})
	if r.Err != nil {
		t.Fatalf("rssp %s: %v", strings.Join(args, " "), r)
	}
	return r.Stdout
}

func (s *server) url(method string) string { return "https://" + s.addr + "/csc/v2/" + method }

// start runs `rssp serve` and waits until info answers.
func (s *server) start(t *testing.T) {
	t.Helper()
	s.logs = &bytes.Buffer{}
	s.cmd = exec.Command(s.bin, "serve", "--config", s.cfg)
	s.cmd.Stdout, s.cmd.Stderr = &lockedWriter{w: s.logs}, &lockedWriter{w: s.logs}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := s.client.Get(s.url("info"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("rssp serve exited: %s", s.logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("rssp serve did not answer within 20s")
}

// kill9 kills the server without warning.
func (s *server) kill9(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.client.Transport.(*http.Transport).CloseIdleConnections()
}

// stop ends the server with SIGTERM (SIGKILL after 10s).
func (s *server) stop(t *testing.T) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("rssp did not stop on SIGTERM")
		s.kill9(t)
	}
}

// rssKiB reads the server's resident set size.
func (s *server) rssKiB() int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// answer is one HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (a answer) code() string {
	var e csc.Error
	_ = json.Unmarshal(a.body, &e)
	return e.Code
}

// call posts v to method with the Authorization header auth.
func (s *server) call(ctx context.Context, method, auth string, v any) answer {
	b, _ := json.Marshal(v)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url(method), bytes.NewReader(b))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// login returns an access token.
func (s *server) login(t *testing.T, name, pw string) string {
	t.Helper()
	a := s.basicLogin(context.Background(), name, pw)
	if a.err != nil || a.status != 200 {
		t.Fatalf("login: %d %s %v", a.status, a.body, a.err)
	}
	var lr csc.LoginResponse
	_ = json.Unmarshal(a.body, &lr)
	return lr.AccessToken
}

func (s *server) basicLogin(ctx context.Context, name, pw string) answer {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url("auth/login"), strings.NewReader("{}"))
	req.SetBasicAuth(name, pw)
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// authorize gets a SAD for n signatures.
func (s *server) authorize(ctx context.Context, tok string, n int) (string, answer) {
	a := s.call(ctx, "credentials/authorize", "Bearer "+tok, map[string]any{"credentialID": s.credID,
		"numSignatures": n, "authData": []map[string]string{{"id": "PIN", "value": pin}}})
	var ar csc.AuthorizeResponse
	if a.err == nil && a.status == 200 {
		_ = json.Unmarshal(a.body, &ar)
	}
	return ar.SAD, a
}

// sign signs one digest with a SAD.
func (s *server) sign(ctx context.Context, tok, sad string, d []byte) answer {
	return s.call(ctx, "signatures/signHash", "Bearer "+tok, csc.SignHashRequest{CredentialID: s.credID, SAD: sad,
		Hashes: []csc.Bytes{d}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256})
}

// digestOf is a distinct SHA-256 digest per client and sequence number.
func digestOf(client, seq int) []byte {
	d := sha256.Sum256([]byte(fmt.Sprintf("soak %d %d %d", client, seq, time.Now().UnixNano())))
	return d[:]
}

// checkState verifies the stopped or running server's state: the audit
// chain (rssp admin audit verify) and SQLite's integrity_check; it returns
// the set of base64 digests with a "sign ok" audit row.
func (s *server) checkState(t *testing.T) map[string]bool {
	t.Helper()
	out := s.run(t, "", "admin", "--config", s.cfg, "audit", "verify")
	t.Logf("audit verify: %s", strings.TrimSpace(out))
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dir, "rssp.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("PRAGMA integrity_check: %q, %v", ok, err)
	}
	signed := map[string]bool{}
	for _, e := range rssptest.AuditEvents(t, filepath.Join(s.dir, "rssp.db"), "sign", s.credID) {
		for _, h := range e.Hashes {
			signed[h] = true
		}
	}
	return signed
}
