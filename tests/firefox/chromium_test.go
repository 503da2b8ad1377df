package firefox

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/chromiumtest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/service"
)

// policyDir is where Debian's chromium reads managed policies.
const policyDir = "/etc/chromium/policies/managed"

// TestChromiumBrowserMode: headless Chromium (Debian's chromium) with the
// module in its NSS database (~/.pki/nssdb, registered by `csctoken
// register --nss`) and the AutoSelectCertificateForUrls policy does TLS
// client authentication in browser mode: the module opens the consent
// page with the system browser ($BROWSER), where the test plays the user
// in another headless Chromium; the page loads with the token's
// certificate, which the server received.
func TestChromiumBrowserMode(t *testing.T) {
	chromiumtest.Need(t)
	testbin.Need(t, RequireEnv, "certutil", "modutil", "xdg-open")
	if os.Geteuid() != 0 {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("the policy file needs root (%s), %s=1", policyDir, RequireEnv)
		}
		t.Skipf("the policy file needs root (%s)", policyDir)
	}
	r := startRSSP(t)
	cert := r.credential(t, service.CredentialSpec{KeyType: "rsa-2048", Description: "RSA key", Multisign: 5})
	site := startClientAuthServer(t, r.srv.Dir, "127.0.0.1", r.clientCAs)

	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	cfg := filepath.Join(dir, "csctoken.toml")
	if err := os.WriteFile(cfg, []byte(r.config("browser")), 0o600); err != nil {
		t.Fatal(err)
	}
	opener := chromiumtest.NewOpener(t, dir)
	log := filepath.Join(dir, "module.log")
	env := append(chromiumtest.StripDesktop(os.Environ(), "HOME=", "XDG_", "CSCTOKEN_", "DBUS_SESSION_BUS_ADDRESS="),
		"HOME="+home, "XDG_RUNTIME_DIR="+dir, "CSCTOKEN_CONFIG="+cfg, "CSCTOKEN_LOG="+log, "BROWSER="+opener.Script)
	run := func(stdin, name string, args ...string) string {
		t.Helper()
		res := testbin.Run(testbin.Cmd{Name: name, Args: args, Env: env, Dir: dir, Stdin: stdin, Limit: time.Minute})
		if res.Err != nil {
			t.Fatalf("%s %s: %s", name, strings.Join(args, " "), res)
		}
		return res.Stdout + res.Stderr
	}
	t.Cleanup(func() {
		if t.Failed() {
			(&desktop{t: t}).keep("module.log", log)
		}
	})
	run(password+"\n", testbin.CLI(t), "login", "--password-stdin")
	nssdb := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(nssdb, 0o700); err != nil {
		t.Fatal(err)
	}
	run("", "certutil", "-N", "-d", "sql:"+nssdb, "--empty-password")
	run("", testbin.CLI(t), "register", "--nss", "sql:"+nssdb, "--library", testbin.Library(t))
	run("", "certutil", "-A", "-d", "sql:"+nssdb, "-n", "test site CA", "-t", "C,,", "-a", "-i", filepath.Join(r.srv.Dir, "tls-ca.pem"))

	// The policy, as IT deploys it: this site gets the certificate of the
	// rssp's CA without a dialog.
	origin := strings.TrimSuffix(site.URL, "/")
	filter, _ := json.Marshal(map[string]any{"pattern": origin, "filter": map[string]any{"ISSUER": map[string]string{"CN": r.clientCAs[len(r.clientCAs)-1].Subject.CommonName}}})
	policy, _ := json.Marshal(map[string]any{"AutoSelectCertificateForUrls": []string{string(filter)}})
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(policyDir, fmt.Sprintf("csctoken-test-%d.json", os.Getpid()))
	if err := os.WriteFile(policyFile, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(policyFile) })

	user := chromiumtest.Start(t, filepath.Join(r.srv.Dir, "tls-cert.pem"))
	spki := spkiHash(t, filepath.Join(r.srv.Dir, "tls-cert.pem"))
	begin := time.Now()
	host := startGroup(t, 2*time.Minute, env, chromiumtest.Path, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+filepath.Join(dir, "chromium"), "--no-first-run", "--disable-component-update",
		"--ignore-certificate-errors-spki-list="+spki, "--dump-dom", site.URL)
	select {
	case u := <-opener.URLs:
		out, err := chromiumtest.Drive(user, u, chromiumtest.Plan{User: "alice", Password: password, PIN: pin, Timeout: 60 * time.Second})
		if err != nil {
			t.Fatalf("consent (pages %v): %v", out.Pages, err)
		}
		t.Logf("consent: %v after %v", out.Pages, time.Since(begin).Round(time.Millisecond))
	case <-host.done:
		t.Fatalf("chromium ended without a consent: %v\n%s", host.err, tailText(host.output(), 30))
	case <-time.After(90 * time.Second):
		t.Fatalf("no consent page opened; chromium:\n%s", tailText(host.output(), 30))
	}
	var got *x509.Certificate
	select {
	case got = <-site.certs:
	case <-time.After(60 * time.Second):
		t.Fatalf("the server got no client certificate; chromium:\n%s", tailText(host.output(), 30))
	}
	if !sameCert(got, cert) {
		t.Fatalf("the server got %s, want the token's certificate", got.Subject)
	}
	select {
	case <-host.done:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium --dump-dom did not end")
	}
	if !strings.Contains(host.output(), "Hello alice") {
		t.Fatalf("chromium did not show the page:\n%s", tailText(host.output(), 30))
	}
	t.Logf("chromium: page loaded with the token's certificate after %v", time.Since(begin).Round(time.Millisecond))
}

// spkiHash is the base64 SHA-256 of a PEM certificate's public key, for
// --ignore-certificate-errors-spki-list.
func spkiHash(t *testing.T, file string) string {
	t.Helper()
	c := readPEMCerts(t, file)[0]
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
