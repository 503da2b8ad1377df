package browser

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/chromiumtest"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user     = "alice"
	password = "correct horse battery 4711"
	pin      = "80317465592" // distinctive: it must never reach the module log
	clientID = "csctoken"
	svcName  = "Browser RSSP"
)

var (
	workDir string // the built library and CLI, for the whole run
	rootDir string // the Go module root
)

func TestMain(m *testing.M) {
	var err error
	if rootDir, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if workDir, err = os.MkdirTemp("", "browser-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// need skips the test when a tool is missing, or fails it under
// CSCTOKEN_REQUIRE_TOOLS=1.
func need(t *testing.T, tools ...string) {
	t.Helper()
	testbin.Need(t, "CSCTOKEN_REQUIRE_TOOLS", tools...)
}

// build runs go build in the module root; the result cache of go test
// sees only files the test opens, so the sources are read first.
func build(t *testing.T, out string, args ...string) string {
	t.Helper()
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
	path := filepath.Join(workDir, out)
	start := time.Now()
	cmd := exec.Command("go", append(append([]string{"build", "-trimpath", "-o", path}, args[:len(args)-1]...), args[len(args)-1])...)
	cmd.Dir = rootDir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, b)
	}
	t.Logf("built %s in %v", out, time.Since(start).Round(time.Millisecond))
	return path
}

// env is the desktop of the test's user: a private HOME and XDG
// directories, the module config, and $BROWSER pointing at
// chromiumtest's opener script, whose URLs the test reads from urls.
type env struct {
	dir     string
	vars    []string
	browser context.Context
	urls    <-chan string
}

// privateVars are left out of the hosts' environment besides the desktop
// session's (chromiumtest.StripDesktop), so that the test's own HOME, XDG
// directories and module config hold, and no keyring is reached.
var privateVars = []string{"CSCTOKEN_", "XDG_", "HOME=", "DBUS_SESSION_BUS_ADDRESS="}

func newEnv(t *testing.T, config string, browser context.Context) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), browser: browser}
	opener := chromiumtest.NewOpener(t, e.dir)
	e.urls = opener.URLs
	cfgPath := filepath.Join(e.dir, "csctoken.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	runtime := filepath.Join(e.dir, "run")
	if err := os.Mkdir(runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	e.vars = append(chromiumtest.StripDesktop(os.Environ(), privateVars...),
		"HOME="+filepath.Join(e.dir, "home"),
		"XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"),
		"XDG_CACHE_HOME="+filepath.Join(e.dir, "cache"),
		"XDG_RUNTIME_DIR="+runtime,
		"CSCTOKEN_CONFIG="+cfgPath,
		"CSCTOKEN_LOG="+e.log(),
		"BROWSER="+opener.Script,
	)
	return e
}

func (e *env) log() string { return filepath.Join(e.dir, "module.log") }

// proc is a host program running.
type proc struct {
	name           string
	stdout, stderr bytes.Buffer
	done           chan error
	start          time.Time
}

func (e *env) start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = e.vars, e.dir
	cmd.WaitDelay = 5 * time.Second
	p := &proc{name: filepath.Base(name) + " " + strings.Join(args, " "), done: make(chan error, 1), start: time.Now()}
	p.name = strings.NewReplacer(e.dir, "$TMP", workDir, "$WORK").Replace(p.name)
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out (hung?): %w", err)
		}
		cancel()
		p.done <- err
	}()
	return p
}

// wait returns the program's output and exit error.
func (p *proc) wait(t *testing.T) (string, error) {
	t.Helper()
	err := <-p.done
	p.done <- err
	t.Logf("%s: %v", p.name, time.Since(p.start).Round(time.Millisecond))
	return p.stdout.String() + p.stderr.String(), err
}

// mustWait fails the test unless the program exits 0.
func (p *proc) mustWait(t *testing.T) string {
	t.Helper()
	out, err := p.wait(t)
	if err != nil {
		t.Fatalf("%s: %v\n%s", p.name, err, out)
	}
	return out
}

// run runs a program to its end.
func (e *env) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	return e.start(t, name, args...).mustWait(t)
}

// browse waits for p to open the browser and plays the user.
// The user signs in as user with password and types pin.
func (e *env) browse(t *testing.T, p *proc, pl chromiumtest.Plan) chromiumtest.Outcome {
	t.Helper()
	pl.User, pl.Password, pl.PIN = user, password, pin
	select {
	case u := <-e.urls:
		start := time.Now()
		out, err := chromiumtest.Drive(e.browser, u, pl)
		if err != nil {
			t.Fatalf("browser (pages %v): %v", out.Pages, err)
		}
		t.Logf("browser: %v in %v", out.Pages, time.Since(start).Round(time.Millisecond))
		return out
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s ended (%v) without opening the browser:\n%s%s", p.name, err, p.stdout.String(), p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not open the browser", p.name)
	}
	return chromiumtest.Outcome{}
}

// credential is one credential of the test user, with its certificate and
// the CKA_ID the module gives it (SHA-1 of the public key bits).
type credential struct {
	id, label string
	certPEM   string // file
	ckaID     string // hex
}

func newCredential(t *testing.T, srv *rssptest.Server, dir string, spec service.CredentialSpec) credential {
	t.Helper()
	id, _ := srv.AddCredential(t, spec)
	tok := srv.Login(t, user, password)
	var info csc.CredentialInfo
	rssptest.Must(t, srv.Call(t, "credentials/info", tok, csc.CredentialsInfoRequest{CredentialID: id, Certificates: csc.CertsSingle})).Decode(t, &info)
	if info.Cert == nil || len(info.Cert.Certificates) == 0 {
		t.Fatal("no certificate")
	}
	der := info.Cert.Certificates[0]
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var spki struct {
		Algo pkix.AlgorithmIdentifier
		Key  asn1.BitString
	}
	if _, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(spki.Key.Bytes)
	c := credential{id: id, label: spec.Description, certPEM: filepath.Join(dir, id+".pem"), ckaID: hex.EncodeToString(sum[:])}
	if err := os.WriteFile(c.certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// verify checks a signature of data with the certificate, with openssl.
func verify(t *testing.T, e *env, c credential, data, sig string) {
	t.Helper()
	pub := filepath.Join(e.dir, c.id+".pub.pem")
	e.run(t, "openssl", "x509", "-in", c.certPEM, "-pubkey", "-noout", "-out", pub)
	out := e.run(t, "openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig, data)
	if !strings.Contains(out, "Verified OK") {
		t.Fatalf("openssl: %s", out)
	}
}

func digestB64(data []byte) string {
	d := sha256.Sum256(data)
	return base64.StdEncoding.EncodeToString(d[:])
}

// TestBrowser signs through libcsctoken.so with pkcs11-tool on a service
// with auth = "oauth2" and credential_auth = "browser", the user at the
// service's pages in a headless Chromium; then logs out and in again with
// the csctoken CLI.
func TestBrowser(t *testing.T) {
	chromiumtest.Need(t)
	need(t, "gcc", "p11-kit-1", "pkcs11-tool", "openssl", "xdg-open")
	begin := time.Now()
	lib := build(t, "libcsctoken.so", "-buildmode=c-shared", "./cgo")
	cli := build(t, "csctoken", "./cmd/csctoken")

	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	certDir := t.TempDir()
	// RSA: SCAL 1 without multisign, so that each consent carries the
	// hash; EC: SCAL 2.
	rsaCred := newCredential(t, srv, certDir, service.CredentialSpec{User: user, KeyType: "rsa-2048", PIN: pin, Description: "RSA key"})
	ecCred := newCredential(t, srv, certDir, service.CredentialSpec{User: user, KeyType: "ec-p256", PIN: pin, SCAL: 2, Description: "EC key"})
	if _, _, err := srv.App.Service.AddOAuthClient(context.Background(), service.ClientSpec{ID: clientID, Name: "csctoken desktop",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, Public: true}); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`[[service]]
name = %q
url = %q
auth = "oauth2"
client_id = %q
credential_auth = "browser"
ca_file = %q
timeout = "20s"
`, svcName, srv.URL, clientID, filepath.Join(srv.Dir, "tls-ca.pem"))
	e := newEnv(t, config, chromiumtest.Start(t, filepath.Join(srv.Dir, ca.TLSCertFile)))
	write := func(name, text string) string {
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tool := func(args ...string) *proc {
		return e.start(t, "pkcs11-tool", append([]string{"--module", lib}, args...)...)
	}
	t.Logf("setup: %v", time.Since(begin).Round(time.Millisecond))

	t.Run("protected authentication path", func(t *testing.T) {
		out := tool("--list-slots").mustWait(t)
		if !strings.Contains(out, "PIN pad present") || strings.Contains(out, "login required") {
			t.Fatalf("token flags:\n%s", out)
		}
	})

	t.Run("RSA: service login and consent in the browser", func(t *testing.T) {
		text := "invoice 2025-0042\n"
		data, sig := write("invoice.txt", text), filepath.Join(e.dir, "invoice.sig")
		// C_Login with a NULL PIN on the protected path: the service
		// login in the browser; then C_Sign: the consent page.
		p := tool("--login", "--sign", "--id", rsaCred.ckaID, "--mechanism", "SHA256-RSA-PKCS", "-i", data, "-o", sig)
		login := e.browse(t, p, chromiumtest.Plan{WantShown: []string{"csctoken desktop", "Signed in as " + user}})
		if login.Pages[0] != "login" || !strings.Contains(login.Consent, "Allow access") {
			t.Errorf("service login: pages %v, consent:\n%s", login.Pages, login.Consent)
		}
		consent := e.browse(t, p, chromiumtest.Plan{WantShown: []string{digestB64([]byte(text)), "pkcs11-tool — RSA key", "RSA key", rsaCred.id}})
		if consent.Pages[0] != "consent" {
			t.Errorf("pages %v: the browser's session with the service was not kept", consent.Pages)
		}
		p.mustWait(t)
		verify(t, e, rsaCred, data, sig)
	})

	t.Run("RSA: the user denies", func(t *testing.T) {
		before := srv.AuditCount(t, "sign", rsaCred.id)
		text := "not this one\n"
		data, sig := write("unwanted.txt", text), filepath.Join(e.dir, "unwanted.sig")
		p := tool("--login", "--sign", "--id", rsaCred.ckaID, "--mechanism", "SHA256-RSA-PKCS", "-i", data, "-o", sig)
		// pkcs11-tool tries again, multi-part (C_SignInit, C_SignUpdate,
		// C_SignFinal), whenever C_Sign fails: a second consent page for
		// the same hash, which the user denies too.
		for range 2 {
			out := e.browse(t, p, chromiumtest.Plan{Deny: true, WantShown: []string{digestB64([]byte(text))}})
			if !strings.Contains(out.Message, "declined") {
				t.Errorf("loopback page: %q", out.Message)
			}
		}
		res, err := p.wait(t)
		if err == nil || !strings.Contains(res, "CKR_FUNCTION_CANCELED") {
			t.Fatalf("pkcs11-tool: %v, want CKR_FUNCTION_CANCELED:\n%s", err, res)
		}
		if after := srv.AuditCount(t, "sign", rsaCred.id); after != before {
			t.Errorf("sign audit rows %d → %d after the user denied", before, after)
		}
	})

	t.Run("ECDSA SCAL 2 without C_Login", func(t *testing.T) {
		text := "contract, SCAL 2\n"
		data, sig := write("contract.txt", text), filepath.Join(e.dir, "contract.sig")
		p := tool("--sign", "--id", ecCred.ckaID, "--mechanism", "ECDSA-SHA256", "--signature-format", "openssl", "-i", data, "-o", sig)
		out := e.browse(t, p, chromiumtest.Plan{WantShown: []string{digestB64([]byte(text)), "pkcs11-tool — EC key", "SCAL 2"}})
		if out.Pages[0] != "consent" {
			t.Errorf("pages %v", out.Pages)
		}
		p.mustWait(t)
		verify(t, e, ecCred, data, sig)
	})

	t.Run("csctoken status, logout, login", func(t *testing.T) {
		out := e.run(t, cli, "status")
		for _, want := range []string{"auth oauth2 in the browser, client " + clientID, "signatures authorized in the browser",
			"login: yes (oauth2); access token valid until", "credentials: 2"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		if out := e.run(t, cli, "logout"); !strings.Contains(out, "token revoked and forgotten") {
			t.Errorf("logout:\n%s", out)
		}
		if out := e.run(t, cli, "status"); !strings.Contains(out, "login: not logged in") {
			t.Errorf("status after logout:\n%s", out)
		}
		// Without a login, listing (C_Initialize) never opens the browser.
		tool("--list-objects").mustWait(t)
		select {
		case u := <-e.urls:
			t.Fatalf("listing opened the browser: %s", u)
		case <-time.After(300 * time.Millisecond):
		}
		p := e.start(t, cli, "login")
		e.browse(t, p, chromiumtest.Plan{WantShown: []string{"csctoken desktop"}})
		out = p.mustWait(t)
		if !strings.Contains(out, "Logged in to \""+svcName+"\"") || !strings.Contains(out, "open this URL in a browser") {
			t.Errorf("login:\n%s", out)
		}
		if out := e.run(t, cli, "status"); !strings.Contains(out, "login: yes (oauth2)") {
			t.Errorf("status after login:\n%s", out)
		}
	})

	t.Run("module log", func(t *testing.T) {
		b, err := os.ReadFile(e.log())
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{pin, password, "csctoken-credential-token"} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("the module log holds %q", secret)
			}
		}
		if !bytes.Contains(b, []byte("credential authorized in the browser")) {
			t.Errorf("module log:\n%s", tail(b, 40))
		}
	})
	select {
	case u := <-e.urls:
		t.Errorf("a browser flow nobody expected: %s", u)
	default:
	}
	t.Logf("browser tests: %v", time.Since(begin).Round(time.Millisecond))
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
