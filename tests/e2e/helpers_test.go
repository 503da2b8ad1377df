package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/service"
)

// The enrolled user. The PIN and password are distinctive so that the
// log checks cannot match them by chance.
const (
	user     = "alice"
	password = "e2e password 5b7c1d"
	pin      = "739146825031"
	wrongPIN = "111122223333"

	tokenLabel = "E2E RSSP"

	labelRSA   = "RSA-2048 SCAL1"
	labelEC    = "P-256 SCAL1"
	labelSCAL2 = "P-256 SCAL2"

	// timeout is the service's configured timeout (authorize, signHash)
	// and list timeout in the module config.
	timeout = 2 * time.Second
)

var (
	workDir string // built binaries, for the whole run (testbin)
	rootDir string // the Go module root
)

func TestMain(m *testing.M) {
	var err error
	if rootDir, workDir, err = testbin.Dirs(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// need skips the test when a tool is missing, or fails it under CSCTOKEN_REQUIRE_TOOLS=1.
func need(t *testing.T, tools ...string) {
	t.Helper()
	testbin.Need(t, "CSCTOKEN_REQUIRE_TOOLS", tools...)
}

// ---- builds ------------------------------------------------------------------

// sessionBuild is the C session host, compiled once per test binary.
var sessionBuild struct {
	sync.Once
	path string
	err  error
}

// library builds the shipped libcsctoken.so like the Makefile.
func library(t *testing.T) string { return testbin.Library(t) }

// cli builds the csctoken command.
func cli(t *testing.T) string { return testbin.CLI(t) }

// sessionHost compiles testdata/session.c.
func sessionHost(t *testing.T) string {
	t.Helper()
	need(t, "gcc", "p11-kit-1")
	b := &sessionBuild
	b.Do(func() {
		// gcc reads the source, not this process: read it here so that go
		// test's cache sees changes to it.
		if _, b.err = os.ReadFile(filepath.Join("testdata", "session.c")); b.err != nil {
			return
		}
		b.path = filepath.Join(workDir, "session")
		cflags, err := exec.Command("pkg-config", "--cflags", "p11-kit-1").Output()
		if err != nil {
			b.err = fmt.Errorf("pkg-config --cflags p11-kit-1: %v", err)
			return
		}
		args := []string{"-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O1", "-g"}
		args = append(args, strings.Fields(string(cflags))...)
		args = append(args, "-I", filepath.Join(rootDir, "cgo"), filepath.Join("testdata", "session.c"), "-o", b.path, "-ldl")
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// ---- servers -------------------------------------------------------------------

// server is what a test needs of an RSSP.
type server struct {
	URL    string
	CAFile string // the trust root of its TLS certificate
	DB     string // its SQLite database, for the audit log
	Svc    *service.Service
}

// startRSSPTest starts an rssptest server.
func startRSSPTest(t *testing.T, o rssptest.Options) *server {
	t.Helper()
	srv := rssptest.Start(t, o)
	return &server{
		URL: srv.URL, CAFile: filepath.Join(srv.Dir, "tls-ca.pem"),
		DB: srv.App.Config.Path(srv.App.Config.Store.Path), Svc: srv.App.Service,
	}
}

// credentials maps labels (descriptions) to credential IDs.
type credentials map[string]string

// enrol adds user with password and the three credentials of the tests:
// RSA-2048 SCAL1 (multisign 5), EC P-256 SCAL1 and EC P-256 SCAL2, all
// with the same PIN.
func enrol(t *testing.T, s *server, name, pw string) credentials {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Svc.AddUser(ctx, name, pw); err != nil {
		t.Fatalf("add user: %v", err)
	}
	creds := credentials{}
	for _, spec := range []service.CredentialSpec{
		{KeyType: "rsa-2048", Multisign: 5, Description: labelRSA},
		{KeyType: "ec-p256", Description: labelEC},
		{KeyType: "ec-p256", SCAL: 2, Multisign: 5, Description: labelSCAL2},
	} {
		spec.User, spec.PIN = name, pin
		c, _, err := s.Svc.AddCredential(ctx, spec)
		if err != nil {
			t.Fatalf("add credential %s: %v", spec.Description, err)
		}
		creds[spec.Description] = c.ID
	}
	return creds
}

// auditEvents returns the hashes of a credential's audit rows with result
// "ok", oldest first, read from the server's database.
func auditEvents(t *testing.T, s *server, event, credID string) [][]string {
	t.Helper()
	var rows [][]string
	for _, e := range rssptest.AuditEvents(t, s.DB, event, credID) {
		rows = append(rows, e.Hashes)
	}
	return rows
}

// ---- the environment of a C host ----------------------------------------------

// env is the private world of the C hosts of one test: HOME, XDG dirs,
// config, module log.
type env struct {
	dir  string
	vars []string
	lib  string
	// secrets must never appear in the module log or the cache.
	secrets []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), lib: library(t), secrets: []string{pin, wrongPIN, password}}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CSCTOKEN_") || strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "HOME=") ||
			strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") {
			continue
		}
		e.vars = append(e.vars, kv)
	}
	e.vars = append(e.vars,
		"HOME="+e.path("home"),
		"XDG_CONFIG_HOME="+e.path("config"),
		"XDG_CACHE_HOME="+e.path("cache"),
		// No OS keyring: tokenstore falls back to its 0600 file when the
		// session bus does not answer (and never autolaunches one).
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+e.path("no-bus"),
		"CSCTOKEN_LOG="+e.log(),
	)
	t.Cleanup(func() { e.checkSecrets(t) })
	return e
}

func (e *env) path(elem ...string) string { return filepath.Join(append([]string{e.dir}, elem...)...) }
func (e *env) log() string                { return e.path("log", "module.log") }

// setenv adds or replaces a variable.
func (e *env) setenv(key, value string) {
	e.vars = slices.DeleteFunc(e.vars, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	if value != "" {
		e.vars = append(e.vars, key+"="+value)
	}
}

// write writes a file in the environment's directory and returns its path.
func (e *env) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := e.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// useConfig writes the module config and points CSCTOKEN_CONFIG at it.
func (e *env) useConfig(t *testing.T, text string) string {
	t.Helper()
	p := e.write(t, "csctoken.toml", []byte(text))
	e.setenv("CSCTOKEN_CONFIG", p)
	return p
}

// serviceTOML is one [[service]] table for a server and user.
func serviceTOML(name string, s *server, username string) string {
	return serviceTOMLTimeout(name, s, username, timeout)
}

// serviceTOMLTimeout is serviceTOML with another timeout (and list_timeout).
func serviceTOMLTimeout(name string, s *server, username string, timeout time.Duration) string {
	return fmt.Sprintf(`
[[service]]
name = %q
url = %q
auth = "basic"
username = %q
credential_auth = "pin"
ca_file = %q
timeout = %q
list_timeout = %q
`, name, s.URL, username, s.CAFile, timeout, timeout)
}

// run runs a host with the environment and stdin.
func (e *env) run(t *testing.T, limit time.Duration, stdin string, name string, args ...string) result {
	t.Helper()
	r := testbin.Run(testbin.Cmd{Name: name, Args: args, Dir: e.dir, Env: e.vars, Stdin: stdin, Limit: limit})
	shown := strings.NewReplacer(e.dir, "$TMP", workDir, "$WORK").Replace(strings.Join(args, " "))
	t.Logf("%s %s: %v", filepath.Base(name), shown, r.Took.Round(time.Millisecond))
	return r
}

// mustRun runs a host and fails the test unless it exits 0.
func (e *env) mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	r := e.run(t, time.Minute, "", name, args...)
	if r.Err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), r)
	}
	return r.Stdout
}

// tool runs pkcs11-tool on the library.
func (e *env) tool(t *testing.T, args ...string) result {
	t.Helper()
	return e.run(t, time.Minute, "", "pkcs11-tool", append([]string{"--module", e.lib}, args...)...)
}

// mustTool runs pkcs11-tool and fails the test unless it exits 0.
func (e *env) mustTool(t *testing.T, args ...string) string {
	t.Helper()
	r := e.tool(t, args...)
	if r.Err != nil {
		t.Fatalf("pkcs11-tool %s: %v", strings.Join(args, " "), r)
	}
	return r.Stdout
}

// login runs `csctoken login --password-stdin` with one password per
// service, and remembers the stored tokens as secrets.
func (e *env) login(t *testing.T, passwords ...string) {
	t.Helper()
	r := e.run(t, time.Minute, strings.Join(passwords, "\n")+"\n", cli(t), "login", "--password-stdin")
	if r.Err != nil {
		t.Fatalf("csctoken login: %v", r)
	}
	// Without a keyring, one 0600 file per service under
	// $XDG_CONFIG_HOME/csctoken/tokens, where the module finds it.
	tokens := e.path("config", "csctoken", "tokens")
	if files, _ := filepath.Glob(filepath.Join(tokens, "*.json")); len(files) != len(passwords) {
		t.Fatalf("csctoken login: %d token files in %s, want %d:\n%s", len(files), tokens, len(passwords), r.Stdout)
	}
	e.secrets = append(e.secrets, storedTokens(t, tokens)...)
}

// storedTokens returns the access and refresh tokens of the token files.
func storedTokens(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no token files in %s: %v", dir, err)
	}
	var out []string
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("token file %s has mode %v, want 0600", f, st.Mode().Perm())
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var file struct{ Secret []byte }
		if err := json.Unmarshal(raw, &file); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var tok map[string]any
		if err := json.Unmarshal(file.Secret, &tok); err != nil {
			t.Fatalf("%s: the secret is not a JSON token: %v", f, err)
		}
		for k, v := range tok {
			if s, ok := v.(string); ok && strings.HasSuffix(k, "token") && s != "" {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			t.Fatalf("%s holds no token", f)
		}
	}
	return out
}

// secretLike matches what rssp's secret.NewToken makes (access and refresh
// tokens, SADs): 32 random bytes in unpadded base64url, 43 characters.
var secretLike = regexp.MustCompile(`(^|[^A-Za-z0-9_-])([A-Za-z0-9_-]{43})($|[^A-Za-z0-9_-])`)

// pathLike matches file paths, which are taken out of the log before the
// search for secretLike (a temporary directory's name may have that shape).
var pathLike = regexp.MustCompile(`/[^\s"]*`)

// checkSecrets makes sure that neither the module logs (*.log) nor the
// public object caches (*.json but the token files) hold a PIN, the password, a service token or anything
// shaped like a token or a SAD.
func (e *env) checkSecrets(t *testing.T) {
	t.Helper()
	var files []string
	_ = filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		tokenFile := strings.HasPrefix(p, e.path("config", "csctoken", "tokens")+"/")
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".log") || strings.HasSuffix(p, ".json") && !tokenFile) {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, s := range e.secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains a secret (%d characters)", f, len(s))
			}
		}
		if strings.HasSuffix(f, ".log") {
			if m := secretLike.FindSubmatch(pathLike.ReplaceAll(data, nil)); m != nil {
				t.Errorf("%s contains something shaped like a token or SAD: %q", f, m[2])
			}
		}
	}
}

// logText returns the module log.
func (e *env) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.log())
	if err != nil {
		t.Fatalf("module log: %v", err)
	}
	return string(b)
}

// ---- pkcs11-tool output ----------------------------------------------------------

// p11Object is one object of `pkcs11-tool --list-objects`.
type p11Object struct {
	kind   string // cert, pubkey, privkey, profile, other
	header string
	attrs  map[string]string // label, ID, Allowed mechanisms, profile_id, ...
}

func (o p11Object) label() string { return o.attrs["label"] }
func (o p11Object) id() string    { return o.attrs["ID"] }

func parseObjects(out string) []p11Object {
	var objs []p11Object
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			kind := "other"
			switch {
			case strings.HasPrefix(line, "Certificate Object"):
				kind = "cert"
			case strings.HasPrefix(line, "Public Key Object"):
				kind = "pubkey"
			case strings.HasPrefix(line, "Private Key Object"):
				kind = "privkey"
			case strings.HasPrefix(line, "Profile object"):
				kind = "profile"
			}
			objs = append(objs, p11Object{kind: kind, header: line, attrs: map[string]string{}})
			continue
		}
		if len(objs) == 0 {
			continue
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			objs[len(objs)-1].attrs[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return objs
}

func ofKind(objs []p11Object, kind string) []p11Object {
	return slices.DeleteFunc(slices.Clone(objs), func(o p11Object) bool { return o.kind != kind })
}

// keyIDs maps the labels of the certificates on a token to their CKA_IDs
// (public objects: no login). pkcs11-tool 0.23 does not select keys by
// --label (it takes the first private key), so keys are chosen by --id.
func (e *env) keyIDs(t *testing.T, args ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, c := range ofKind(parseObjects(e.mustTool(t, append(args, "--list-objects", "--type", "cert")...)), "cert") {
		ids[c.label()] = c.id()
	}
	return ids
}

// signMechanisms parses `pkcs11-tool --list-mechanisms`: the mechanisms
// with the sign flag.
func signMechanisms(out string) []string {
	var mechs []string
	for line := range strings.Lines(out) {
		f := strings.Split(strings.TrimSpace(line), ", ")
		if strings.HasPrefix(line, "  ") && slices.Contains(f, "sign") {
			mechs = append(mechs, f[0])
		}
	}
	slices.Sort(mechs)
	return mechs
}

// keyID is CKA_ID as the module derives it: the SHA-1 of the certificate's
// subjectPublicKey bits.
func keyID(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	var spki struct {
		Alg pkix.AlgorithmIdentifier
		Key asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(spki.Key.Bytes)
	return hex.EncodeToString(sum[:])
}

// ---- the session host ------------------------------------------------------------

// session is testdata/session.c running on the library: one PKCS#11
// session driven command by command.
type session struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	err   bytes.Buffer
}

func (e *env) session(t *testing.T) *session {
	t.Helper()
	s := &session{t: t, cmd: exec.Command(sessionHost(t), e.lib), lines: make(chan string, 16)}
	s.cmd.Env, s.cmd.Dir, s.cmd.Stderr = e.vars, e.dir, &s.err
	var err error
	if s.in, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		s.in.Close()
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("session host: %v\n%s", err, s.err.String())
			}
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			t.Errorf("session host did not exit after stdin closed (hung in C_Finalize?)\n%s", s.err.String())
		}
	})
	return s
}

// call sends one command and returns its answer's fields and how long it
// took; the first field is the CK_RV name.
func (s *session) call(command string, limit time.Duration) ([]string, time.Duration) {
	s.t.Helper()
	start := time.Now()
	if _, err := io.WriteString(s.in, command+"\n"); err != nil {
		s.t.Fatalf("%s: %v\n%s", command, err, s.err.String())
	}
	select {
	case line, ok := <-s.lines:
		took := time.Since(start)
		if !ok {
			s.t.Fatalf("%s: the session host exited\n%s", command, s.err.String())
		}
		shown, _, _ := strings.Cut(command, " ")
		s.t.Logf("session %s: %.40s (%v)", shown, line, took.Round(time.Millisecond))
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "ERROR" {
			s.t.Fatalf("%s: %q", command, line)
		}
		return f, took
	case <-time.After(limit):
		s.t.Fatalf("%s: no answer within %v (hung?)", command, limit)
	}
	return nil, 0
}

// want calls a command and fails unless it answers rv.
func (s *session) want(command, rv string) []string {
	s.t.Helper()
	f, _ := s.call(command, time.Minute)
	if f[0] != rv {
		shown, _, _ := strings.Cut(command, " ")
		s.t.Fatalf("%s = %s, want %s", shown, f[0], rv)
	}
	return f
}

// cert reads the certificate labelled label.
func (s *session) cert(label string) *x509.Certificate {
	s.t.Helper()
	f := s.want("cert "+label, "CKR_OK")
	der, err := hex.DecodeString(f[1])
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// result is how a host ended.
type result = testbin.Result
