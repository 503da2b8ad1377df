// Package programs runs real PKCS#11 consumers (p11tool, OpenSSH, NSS,
// OpenSSL, Java, p11-kit) on the shipped libcsctoken.so against a real
// rssp with SoftHSM2 keys. No Go code here loads the module: every
// program runs as a subprocess.
package programs

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user       = "alice"
	password   = "programs password 8e41"
	pin        = "582903174611"
	tokenLabel = "Programs RSSP"

	labelRSA = "RSA-2048 key"
	labelEC  = "P-256 key"
)

var (
	workDir string
	rootDir string
)

func TestMain(m *testing.M) {
	var err error
	if rootDir, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if workDir, err = os.MkdirTemp("", "csctoken-programs-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// need skips the test when a program is missing, or fails it under
// CSCTOKEN_REQUIRE_PROGRAMS=1. A name with a slash is a file that must exist.
func need(t *testing.T, programs ...string) {
	t.Helper()
	for _, p := range programs {
		var err error
		if strings.Contains(p, "/") {
			_, err = os.Stat(p)
		} else {
			_, err = exec.LookPath(p)
		}
		if err == nil {
			continue
		}
		if os.Getenv("CSCTOKEN_REQUIRE_PROGRAMS") == "1" {
			t.Fatalf("%s is required (CSCTOKEN_REQUIRE_PROGRAMS=1): %v", p, err)
		}
		t.Skipf("%s not installed (%v); set CSCTOKEN_REQUIRE_PROGRAMS=1 to make this a failure", p, err)
	}
}

// ---- builds ------------------------------------------------------------------

type once struct {
	sync.Once
	path string
	err  error
}

var (
	libBuild, cliBuild once
	trackOnce          sync.Once
)

// trackSources reads what the binaries are built from, so that go test's
// result cache (which sees only the files the test process opens) is
// invalidated when any of it changes.
func trackSources(t *testing.T) {
	for _, dir := range []string{"cgo", "module", "cscclient", "csc", filepath.Join("cmd", "csctoken")} {
		err := filepath.WalkDir(filepath.Join(rootDir, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			_, err = os.ReadFile(path)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if _, err := os.ReadFile(filepath.Join(rootDir, f)); err != nil {
			t.Fatal(err)
		}
	}
}

func goBuild(b *once, t *testing.T, name string, args ...string) string {
	t.Helper()
	b.Do(func() {
		trackOnce.Do(func() { trackSources(t) })
		b.path = filepath.Join(workDir, name)
		start := time.Now()
		cmd := exec.Command("go", append(append([]string{"build", "-trimpath"}, args[:len(args)-1]...), "-o", b.path, args[len(args)-1])...)
		cmd.Dir = rootDir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
			return
		}
		t.Logf("built %s in %v", name, time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// library builds the shipped libcsctoken.so like the Makefile.
func library(t *testing.T) string {
	t.Helper()
	need(t, "gcc", "pkg-config")
	if err := exec.Command("pkg-config", "--exists", "p11-kit-1").Run(); err != nil {
		t.Fatalf("pkg-config p11-kit-1 (Debian: libp11-kit-dev): %v", err)
	}
	return goBuild(&libBuild, t, "libcsctoken.so", "-buildmode=c-shared", "./cgo")
}

func cli(t *testing.T) string {
	t.Helper()
	return goBuild(&cliBuild, t, "csctoken", "./cmd/csctoken")
}

// ---- the fixture ---------------------------------------------------------------

// key is one credential as the token shows it.
type key struct {
	label   string
	id      string // CKA_ID, hex
	cert    *x509.Certificate
	certPEM string // file: the certificate
	pubPEM  string // file: its public key
}

// fixture is a real rssp (SoftHSM2 backend) with an RSA-2048 and an EC
// P-256 credential, and a private environment logged in to it with
// `csctoken login`.
type fixture struct {
	dir   string
	vars  []string
	lib   string
	url   string
	keys  map[string]*key // by label
	caPEM string          // file: issuing CA and root of the credentials
	cas   []*x509.Certificate
	rsa   *key
	ec    *key
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	need(t, "openssl")
	f := &fixture{dir: t.TempDir(), lib: library(t), keys: map[string]*key{}}
	srv := rssptest.Start(t, rssptest.Options{Backend: rssptest.PKCS11})
	f.url = srv.URL
	ctx := context.Background()
	if _, err := srv.App.Service.AddUser(ctx, user, password); err != nil {
		t.Fatalf("add user: %v", err)
	}
	var caPEMs []byte
	for _, spec := range []service.CredentialSpec{
		{KeyType: "rsa-2048", Multisign: 5, Description: labelRSA},
		{KeyType: "ec-p256", Multisign: 5, Description: labelEC},
	} {
		spec.User, spec.PIN = user, pin
		c, _, err := srv.App.Service.AddCredential(ctx, spec)
		if err != nil {
			t.Fatalf("add credential %s: %v", spec.Description, err)
		}
		cert, err := x509.ParseCertificate(c.CertChain[0])
		if err != nil {
			t.Fatal(err)
		}
		k := &key{label: spec.Description, id: keyID(t, cert), cert: cert}
		k.certPEM = f.write(t, spec.Description+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
		pub, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		k.pubPEM = f.write(t, spec.Description+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
		f.keys[k.label] = k
		if caPEMs == nil {
			for _, der := range c.CertChain[1:] {
				ca, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				f.cas = append(f.cas, ca)
				caPEMs = append(caPEMs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
			}
		}
	}
	f.rsa, f.ec = f.keys[labelRSA], f.keys[labelEC]
	f.caPEM = f.write(t, "ca.pem", caPEMs)

	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CSCTOKEN_") || strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "HOME=") ||
			strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") || strings.HasPrefix(kv, "P11_KIT_") {
			continue
		}
		f.vars = append(f.vars, kv)
	}
	f.vars = append(f.vars,
		"HOME="+f.path("home"),
		"XDG_CONFIG_HOME="+f.path("config"),
		"XDG_CACHE_HOME="+f.path("cache"),
		"XDG_RUNTIME_DIR="+f.path("run"),
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+f.path("no-bus"),
		"CSCTOKEN_LOG="+f.path("log", "module.log"),
	)
	for _, d := range []string{"home", "config", "cache", "run", "log"} {
		if err := os.MkdirAll(f.path(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f.setenv("CSCTOKEN_CONFIG", f.write(t, "csctoken.toml", []byte(fmt.Sprintf(`
[[service]]
name = %q
url = %q
auth = "basic"
username = %q
credential_auth = "pin"
ca_file = %q
timeout = "10s"
list_timeout = "10s"
`, tokenLabel, srv.URL, user, filepath.Join(srv.Dir, "tls-ca.pem")))))
	r := f.run(t, time.Minute, password+"\n", cli(t), "login", "--password-stdin")
	if r.err != nil {
		t.Fatalf("csctoken login: %v", r)
	}
	t.Cleanup(func() {
		// Whatever the programs did, the PIN and the password stay out of
		// the module log.
		if log, err := os.ReadFile(f.path("log", "module.log")); err == nil {
			for _, secret := range []string{pin, password} {
				if bytes.Contains(log, []byte(secret)) {
					t.Errorf("the module log holds a secret (%d characters)", len(secret))
				}
			}
		}
		if t.Failed() {
			if log, err := os.ReadFile(f.path("log", "module.log")); err == nil {
				if len(log) > 3000 {
					log = log[len(log)-3000:]
				}
				t.Logf("module log (tail):\n%s", log)
			}
		}
	})
	return f
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

// pctID is a CKA_ID in pkcs11 URI form.
func pctID(id string) string {
	var b strings.Builder
	for i := 0; i+1 < len(id); i += 2 {
		b.WriteString("%" + id[i:i+2])
	}
	return b.String()
}

func (f *fixture) path(elem ...string) string {
	return filepath.Join(append([]string{f.dir}, elem...)...)
}

func (f *fixture) setenv(key, value string) {
	f.vars = slices.DeleteFunc(f.vars, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	if value != "" {
		f.vars = append(f.vars, key+"="+value)
	}
}

func (f *fixture) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := f.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type result struct {
	stdout, stderr string
	err            error
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("%v after %v\nstdout:\n%s\nstderr:\n%s", r.err, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// run runs a program in the fixture's environment.
func (f *fixture) run(t *testing.T, limit time.Duration, stdin string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = f.vars
	cmd.Dir = f.dir
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), err: err, took: time.Since(start)}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %v (hung?): %w", limit, err)
	}
	shown := strings.NewReplacer(f.dir, "$TMP", workDir, "$WORK", pin, "$PIN").Replace(strings.Join(args, " "))
	t.Logf("%s %s: %v", filepath.Base(name), shown, r.took.Round(time.Millisecond))
	return r
}

// mustRun runs a program and fails the test unless it exits 0.
func (f *fixture) mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	return f.mustRunIn(t, "", name, args...)
}

func (f *fixture) mustRunIn(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	r := f.run(t, 2*time.Minute, stdin, name, args...)
	if r.err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.NewReplacer(f.dir, "$TMP", workDir, "$WORK", pin, "$PIN").Replace(strings.Join(args, " ")), r)
	}
	return r.stdout
}

// verify checks a signature of data with a key's public key using openssl.
func (f *fixture) verify(t *testing.T, k *key, hash, data, sig string, extra ...string) {
	t.Helper()
	args := append([]string{"dgst", "-" + hash, "-verify", k.pubPEM, "-signature", sig}, extra...)
	out := f.mustRun(t, "openssl", append(args, data)...)
	if !strings.Contains(out, "Verified OK") {
		t.Fatalf("openssl dgst -verify: %q", out)
	}
}
