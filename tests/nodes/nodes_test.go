// Package nodes runs the rssp on two nodes: two `rssp serve` processes of
// the real binary on different loopback ports, sharing one PostgreSQL
// database (internal/pgtest, a throwaway cluster) and one SoftHSM2 token
// (internal/softhsmtest), as docs/deployment.md describes with a network
// HSM. It checks that every single-use and ordered thing is so across the
// nodes (the password throttle too), that a burst on both nodes leaves one
// verifiable audit chain with a row for every signature, that kill -9 of
// one node mid-burst leaves the other serving and nothing half-written,
// and that libcsctoken.so with both URLs (failover_urls) keeps signing
// while one node is killed.
//
// Needs PostgreSQL's server programs, SoftHSM2, and for the module test
// gcc and p11-kit's header; each is skipped when missing unless CI's
// CSCTOKEN_REQUIRE_POSTGRES, CSCTOKEN_REQUIRE_SOFTHSM, CSCTOKEN_REQUIRE_TOOLS
// make it a failure.
package nodes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/pgtest"
	"github.com/csctoken/csctoken/internal/softhsmtest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/store/postgres"
)

const (
	user     = "alice"
	password = "two nodes password 7c1e"
	pin      = "551902"
)

var workDir string

func TestMain(m *testing.M) {
	var err error
	if _, workDir, err = testbin.Dirs(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	testbin.Cleanup()
	os.Exit(code)
}

// cluster is two nodes over one database and one token.
type cluster struct {
	dsn  string
	a, b *node
}

// node is one `rssp serve` process.
type node struct {
	name, bin, dir, cfg, addr string
	client                    *http.Client
	cmd                       *exec.Cmd
	exited                    chan struct{}
	logs                      *lockedBuf
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var storeTable = regexp.MustCompile(`(?ms)^\[store\]\n.*?(^\[|\z)`)

// newCluster sets up node A with rssp init (keys in a SoftHSM2 token, the
// store in a new PostgreSQL database) and node B as a copy of A's setup on
// another port: the same KEK, CA and TLS files, as deployment.md asks.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	tok := softhsmtest.New(t) // SOFTHSM2_CONF for the processes started below
	dsn := pgtest.Database(t)
	bin := testbin.Go(t, "rssp", "./cmd/rssp")
	c := &cluster{dsn: dsn}
	root := t.TempDir()
	pinFile := filepath.Join(root, "hsm-pin")
	if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.a = &node{name: "A", bin: bin, dir: filepath.Join(root, "a"), addr: freeAddr(t)}
	c.a.rssp(t, "", "init", "--dir", c.a.dir, "--listen", c.a.addr, "--backend", "pkcs11",
		"--pkcs11-module", tok.ModulePath, "--pkcs11-token", tok.Label, "--pkcs11-pin-file", pinFile)
	c.a.cfg = filepath.Join(c.a.dir, "rssp.toml")
	text, err := os.ReadFile(c.a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	pg := fmt.Sprintf("[store]\ndriver = \"postgres\"\ndsn = %q\n\n", dsn)
	conf := storeTable.ReplaceAllStringFunc(string(text), func(m string) string {
		if strings.HasSuffix(m, "[") {
			return pg + "["
		}
		return pg
	})
	if !strings.Contains(conf, `driver = "postgres"`) {
		t.Fatalf("no [store] table in rssp.toml:\n%s", text)
	}
	// Cheap password hashing: the figures of production costs are in bench/.
	conf = strings.Replace(conf, "[security]\n", "[security]\nargon2_time = 1\nargon2_memory_kib = 64\n", 1)
	if err := os.WriteFile(c.a.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c.b = &node{name: "B", bin: bin, dir: filepath.Join(root, "b"), addr: freeAddr(t)}
	if out, err := exec.Command("cp", "-a", c.a.dir, c.b.dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	c.b.cfg = filepath.Join(c.b.dir, "rssp.toml")
	conf = strings.Replace(conf, fmt.Sprintf("listen = %q", c.a.addr), fmt.Sprintf("listen = %q", c.b.addr), 1)
	if err := os.WriteFile(c.b.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(filepath.Join(c.a.dir, "tls-ca.pem"))
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("tls-ca.pem: %v", err)
	}
	for _, n := range []*node{c.a, c.b} {
		n.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 256, ForceAttemptHTTP2: true,
		}}
	}
	// Both start together: the schema is migrated once, under the lock.
	var wg sync.WaitGroup
	for _, n := range []*node{c.a, c.b} {
		wg.Add(1)
		go func() { defer wg.Done(); n.start(t) }()
	}
	wg.Wait()
	for _, n := range []*node{c.a, c.b} {
		t.Cleanup(func() { n.stop(t) })
	}
	c.a.rssp(t, password+"\n", "admin", "--config", c.a.cfg, "user", "add", user, "--password-stdin")
	return c
}

// credential adds an EC P-256 credential of alice through node n's admin.
func (c *cluster) credential(t *testing.T, n *node, multisign int, desc string) string {
	t.Helper()
	return strings.TrimSpace(n.rssp(t, pin+"\n", "admin", "--config", n.cfg, "credential", "add", "--user", user,
		"--key", "ec-p256", "--pin-stdin", "--multisign", strconv.Itoa(multisign), "--description", desc))
}

// rssp runs an rssp command and returns its stdout.
func (n *node) rssp(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := testbin.Run(testbin.Cmd{Name: n.bin, Args: args, Stdin: stdin, Limit: time.Minute})
	if r.Err != nil {
		t.Fatalf("rssp %s: %v", strings.Join(args, " "), r)
	}
	return r.Stdout
}

func (n *node) url(method string) string { return "https://" + n.addr + "/csc/v2/" + method }

// start runs `rssp serve` and waits until /readyz answers 200.
func (n *node) start(t *testing.T) {
	t.Helper()
	n.logs = &lockedBuf{}
	n.cmd = exec.Command(n.bin, "serve", "--config", n.cfg)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		t.Error(err)
		return
	}
	n.exited = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := n.client.Get("https://" + n.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-n.exited:
			t.Errorf("node %s: rssp serve exited: %s", n.name, n.logs)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Errorf("node %s: not ready within 30s: %s", n.name, n.logs)
}

// kill9 kills the node without warning.
func (n *node) kill9() {
	_ = n.cmd.Process.Kill()
	<-n.exited
	n.client.Transport.(*http.Transport).CloseIdleConnections()
}

// stop ends the node with SIGTERM (SIGKILL after 15s).
func (n *node) stop(t *testing.T) {
	if n.cmd == nil || n.cmd.Process == nil || n.exited == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("node %s did not stop on SIGTERM", n.name)
		n.kill9()
	}
}

// answer is one HTTP answer.
type answer struct {
	status int
	body   []byte
	err    error
}

func (a answer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("%d %s", a.status, bytes.TrimSpace(a.body))
}

func (n *node) call(ctx context.Context, method, auth string, v any) answer {
	b, _ := json.Marshal(v)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url(method), bytes.NewReader(b))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{status: resp.StatusCode, body: body, err: err}
}

func (n *node) login(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.url("auth/login"), strings.NewReader("{}"))
	req.SetBasicAuth(user, password)
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatalf("node %s: login: %v", n.name, err)
	}
	defer resp.Body.Close()
	var lr csc.LoginResponse
	if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil || resp.StatusCode != 200 || lr.AccessToken == "" {
		t.Fatalf("node %s: login: %d %v", n.name, resp.StatusCode, err)
	}
	return lr.AccessToken
}

func (n *node) authorize(ctx context.Context, tok, cred, factor string, count int) (string, answer) {
	a := n.call(ctx, "credentials/authorize", "Bearer "+tok, map[string]any{"credentialID": cred,
		"numSignatures": count, "authData": []map[string]string{{"id": "PIN", "value": factor}}})
	var ar csc.AuthorizeResponse
	if a.err == nil && a.status == 200 {
		_ = json.Unmarshal(a.body, &ar)
	}
	return ar.SAD, a
}

func (n *node) sign(ctx context.Context, tok, cred, sad string, d []byte) answer {
	return n.call(ctx, "signatures/signHash", "Bearer "+tok, csc.SignHashRequest{CredentialID: cred, SAD: sad,
		Hashes: []csc.Bytes{d}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256})
}

var digestSeq struct {
	sync.Mutex
	n int
}

// digest is a SHA-256 digest never used before in this test binary.
func digest() []byte {
	digestSeq.Lock()
	digestSeq.n++
	n := digestSeq.n
	digestSeq.Unlock()
	d := sha256.Sum256([]byte(fmt.Sprintf("nodes %d %d", n, time.Now().UnixNano())))
	return d[:]
}

func b64(d []byte) string { return base64.StdEncoding.EncodeToString(d) }

// signedDigests reads the audit chain from the database: the base64
// digests of the "sign" rows with result "ok" of cred.
func (c *cluster) signedDigests(t *testing.T, cred string) map[string]int {
	t.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{DSN: c.dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int{}
	for after := int64(0); ; {
		evs, err := db.AuditEvents(ctx, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, e := range evs {
			if e.Event == "sign" && e.CredentialID == cred && e.Result == "ok" {
				for _, h := range e.Hashes {
					out[h]++
				}
			}
			after = e.Seq
		}
	}
}

// auditVerify runs `rssp admin audit verify` through node n's config.
func (c *cluster) auditVerify(t *testing.T, n *node) {
	t.Helper()
	out := n.rssp(t, "", "admin", "--config", n.cfg, "audit", "verify")
	t.Logf("audit verify: %s", strings.TrimSpace(out))
}
