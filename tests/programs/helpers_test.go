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
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/testbin"
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

// need skips the test when a tool is missing, or fails it under CSCTOKEN_REQUIRE_PROGRAMS=1.
func need(t *testing.T, tools ...string) {
	t.Helper()
	testbin.Need(t, "CSCTOKEN_REQUIRE_PROGRAMS", tools...)
}

// ---- builds ------------------------------------------------------------------

// library builds the shipped libcsctoken.so like the Makefile.
func library(t *testing.T) string { return testbin.Library(t) }

// cli builds the csctoken command.
func cli(t *testing.T) string { return testbin.CLI(t) }

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
	srv   *rssptest.Server
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
	f.url, f.srv = srv.URL, srv
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
	if r.Err != nil {
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

// run runs a program in the fixture's environment.
func (f *fixture) run(t *testing.T, limit time.Duration, stdin string, name string, args ...string) result {
	t.Helper()
	r := testbin.Run(testbin.Cmd{Name: name, Args: args, Dir: f.dir, Env: f.vars, Stdin: stdin, Limit: limit})
	shown := strings.NewReplacer(f.dir, "$TMP", workDir, "$WORK", pin, "$PIN").Replace(strings.Join(args, " "))
	t.Logf("%s %s: %v", filepath.Base(name), shown, r.Took.Round(time.Millisecond))
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
	if r.Err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.NewReplacer(f.dir, "$TMP", workDir, "$WORK", pin, "$PIN").Replace(strings.Join(args, " ")), r)
	}
	return r.Stdout
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

// result is how a program ended.
type result = testbin.Result
