package programs

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/chromiumtest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/service"
)

// Debian's Python with the uno module (python3-uno); a pyenv or venv
// python3 earlier on PATH has no uno.
const (
	systemPython = "/usr/bin/python3"
	unoModule    = "/usr/lib/python3/dist-packages/uno.py"
)

// CertificateValidity.VALID (com.sun.star.security).
const certificateValid = 0

// TestLibreOffice signs ODF documents with a headless LibreOffice (7.4,
// Debian 12) through NSS and libcsctoken.so, registered with `csctoken
// register --nss` in the database LibreOffice opens
// (MOZILLA_CERTIFICATE_FOLDER), and verifies them with LibreOffice, for
// both ways of authorizing signatures:
//
//   - credential_auth = "pin": headless LibreOffice cannot ask for the PIN
//     (getPersonalCertificates throws NoPasswordException), so a UNO
//     component loaded into soffice.bin logs the token in through soffice's
//     own NSS (testdata/libreoffice/nsslogin.py), as the GUI's password
//     dialog would; then LibreOffice lists the keys and signs.
//   - credential_auth = "browser": no PIN at all; each signature is
//     approved on the rssp's consent page, which the module opens through
//     xdg-open and $BROWSER, here a headless Chromium playing the user.
//
// Signing is DocumentDigitalSignatures.signDocumentWithCertificate on the
// stored .odt, as LibreOffice's own DocumentSigner does it; LibreOffice
// verifies each document right after signing and again in a separate
// soffice whose database has no module and trusts only the rssp's root.
func TestLibreOffice(t *testing.T) {
	needLibreOffice(t)
	need(t, "certutil", "modutil")
	begin := time.Now()
	f := newFixture(t)
	csctoken := cli(t)
	script, err := filepath.Abs(filepath.Join("testdata", "libreoffice", "office.py"))
	if err != nil {
		t.Fatal(err)
	}
	var root []byte
	for _, c := range f.cas {
		if bytes.Equal(c.RawIssuer, c.RawSubject) {
			root = c.Raw
		}
	}
	if root == nil {
		t.Fatal("no root among the credentials' CA certificates")
	}
	// nssDB makes a database for LibreOffice: with the module (the
	// signer's), or with the issuing CA as an untrusted intermediate (the
	// verifier's: LibreOffice 7.4 verifies the signer's certificate with
	// NSS's database and tokens only, not with the chain that it wrote
	// into the signature, XAdES CertificateValues). LibreOffice checks a
	// signer's certificate for the usages SSL client, SSL server, SSL CA,
	// e-mail signer and recipient: the root must be trusted for e-mail
	// (",C,"); trusted for TLS servers only ("C,,") CertificateStatus is
	// INVALID.
	nssDB := func(t *testing.T, name string, module bool) string {
		t.Helper()
		db := f.path(name)
		f.write(t, name+"/.keep", nil)
		f.mustRun(t, "certutil", "-N", "-d", "sql:"+db, "--empty-password")
		if module {
			if out := f.mustRun(t, csctoken, "register", "--nss", "sql:"+db, "--library", f.lib); !strings.Contains(out, "registered") {
				t.Fatalf("csctoken register --nss: %q", out)
			}
		}
		for i, c := range f.cas {
			trust := ",,"
			if bytes.Equal(c.Raw, root) {
				trust = ",C,"
			} else if module {
				continue
			}
			file := f.write(t, fmt.Sprintf("ca%d.pem", i), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
			f.mustRun(t, "certutil", "-A", "-d", "sql:"+db, "-n", fmt.Sprintf("rssp CA %d", i), "-t", trust, "-a", "-i", file)
		}
		return db
	}
	py := func(t *testing.T, env []string, stdin string, args ...string) map[string]any {
		t.Helper()
		r := testbin.Run(testbin.Cmd{Name: systemPython, Args: append([]string{script}, args...), Dir: f.dir, Env: env, Stdin: stdin, Limit: time.Minute})
		t.Logf("office.py %s: %v", strings.ReplaceAll(strings.Join(args, " "), f.dir, "$TMP"), r.Took.Round(time.Millisecond))
		if r.Err != nil {
			t.Fatalf("office.py %s: %v", args[0], r)
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
			t.Fatalf("office.py %s: %v\n%s", args[0], err, r)
		}
		return res
	}
	keys := []*key{f.rsa, f.ec}
	var signed []string // documents for the independent verifier
	var signedBy []*key
	sign := func(t *testing.T, res map[string]any, k *key, doc string) {
		t.Helper()
		t.Logf("signDocumentWithCertificate took %vs (ODF %v)", res["signSeconds"], res["odfVersion"])
		checkSignatures(t, res["signatures"], k, "in the signer's soffice")
		checkODF(t, f, doc, k)
		signed, signedBy = append(signed, doc), append(signedBy, k)
	}
	// The verifier's database: no module, the rssp's root trusted, the
	// issuing CA known.
	verifyDB := nssDB(t, "nssdb-verify", false)
	t.Logf("setup: %v", time.Since(begin).Round(time.Millisecond))

	t.Run("pin", func(t *testing.T) {
		env := slices.Clone(f.vars)
		env = setenv(env, "MOZILLA_CERTIFICATE_FOLDER", "sql:"+nssDB(t, "nssdb-pin", true))
		office := startOffice(t, f, "pin", env)
		defer office.stop()

		// Before the login LibreOffice cannot list the keys: it would ask
		// for the PIN and has no one to ask. A wrong PIN is refused at
		// C_Login (the module checks it with the service).
		res := py(t, env, "000000\n", "login", office.pipe, tokenLabel)
		for _, k := range []string{"beforeError", "afterError"} {
			if res[k] != "NoPasswordException" {
				t.Errorf("getPersonalCertificates without a login: error %q; want NoPasswordException", res[k])
			}
		}
		if res["login"] != "needLogin=1 loggedIn=0 error=-8177" {
			t.Errorf("NSS login in soffice.bin with a wrong PIN: %v, want SEC_ERROR_BAD_PASSWORD (-8177)", res["login"])
		}
		res = py(t, env, pin+"\n", "login", office.pipe, tokenLabel)
		if res["login"] != "needLogin=1 loggedIn=1 error=0" {
			t.Errorf("NSS login in soffice.bin: %v", res["login"])
		}
		if res["afterError"] != "" {
			t.Fatalf("getPersonalCertificates after the login: %v", res["afterError"])
		}
		wantCerts(t, list(res["after"]), keys)
		for _, k := range keys {
			t.Run(k.label, func(t *testing.T) {
				doc := f.path("pin " + k.label + ".odt")
				calls := countIn(t, f.path("log", "module.log"), "method=signatures/signHash")
				res := py(t, env, "", "sign", office.pipe, f.write(t, k.label+".der", k.cert.Raw), doc)
				if n := countIn(t, f.path("log", "module.log"), "method=signatures/signHash") - calls; n != 1 {
					t.Errorf("signHash calls in the module log: %d, want 1", n)
				}
				sign(t, res, k, doc)
			})
		}
		// The PDF export signs too once the token is logged in (pdfsig,
		// poppler, verifies).
		for _, k := range keys {
			t.Run("PDF "+k.label, func(t *testing.T) {
				need(t, "pdfsig")
				doc := f.path("pin " + k.label + ".pdf")
				calls := countIn(t, f.path("log", "module.log"), "method=signatures/signHash")
				res := py(t, env, "", "pdf", office.pipe, f.write(t, k.label+".der", k.cert.Raw), doc)
				t.Logf("PDF export took %vs", res["exportSeconds"])
				if n := countIn(t, f.path("log", "module.log"), "method=signatures/signHash") - calls; n != 1 {
					t.Errorf("signHash calls in the module log: %d, want 1", n)
				}
				out := f.mustRun(t, "pdfsig", "-nssdir", "sql:"+verifyDB, doc)
				for _, want := range []string{
					"Signer Certificate Common Name: " + k.cert.Subject.CommonName,
					"Signer full Distinguished Name: serialNumber=" + k.cert.Subject.SerialNumber + ",",
					"Signing Hash Algorithm: SHA-256",
					"Signature Validation: Signature is Valid.",
					"Certificate Validation: Certificate is Trusted.",
					"Total document signed",
				} {
					if !strings.Contains(out, want) {
						t.Errorf("no %q in pdfsig's verification:\n%s", want, out)
					}
				}
			})
		}
	})

	t.Run("browser", func(t *testing.T) {
		need(t, chromiumtest.Path, "xdg-open")
		if _, _, err := f.srv.App.Service.AddOAuthClient(context.Background(), service.ClientSpec{ID: "csctoken", Name: "csctoken desktop",
			RedirectURIs: []string{"http://127.0.0.1/callback"}, Public: true}); err != nil {
			t.Fatal(err)
		}
		config := f.write(t, "csctoken-browser.toml", []byte(fmt.Sprintf(`
[[service]]
name = %q
url = %q
auth = "basic"
username = %q
client_id = "csctoken"
credential_auth = "browser"
ca_file = %q
timeout = "30s"
list_timeout = "10s"
`, tokenLabel, f.url, user, filepath.Join(f.srv.Dir, "tls-ca.pem"))))
		opener := chromiumtest.NewOpener(t, f.dir)
		log := f.path("log", "module-browser.log")
		// No desktop: xdg-open runs $BROWSER, the opener's script.
		env := chromiumtest.StripDesktop(f.vars)
		for _, kv := range [][2]string{
			{"CSCTOKEN_CONFIG", config},
			{"CSCTOKEN_LOG", log},
			{"XDG_CACHE_HOME", f.path("cache-browser")},
			{"BROWSER", opener.Script},
		} {
			env = setenv(env, kv[0], kv[1])
		}
		if r := testbin.Run(testbin.Cmd{Name: csctoken, Args: []string{"login", "--password-stdin"}, Dir: f.dir, Env: env,
			Stdin: password + "\n", Limit: time.Minute}); r.Err != nil {
			t.Fatalf("csctoken login: %v", r)
		}
		env = setenv(env, "MOZILLA_CERTIFICATE_FOLDER", "sql:"+nssDB(t, "nssdb-browser", true))
		browser := chromiumtest.Start(t, filepath.Join(f.srv.Dir, ca.TLSCertFile))
		office := startOffice(t, f, "browser", env)
		defer office.stop()

		// The token does not ask for a login: the keys are listed at once.
		res := py(t, env, "", "certs", office.pipe)
		if res["error"] != "" {
			t.Fatalf("getPersonalCertificates: %v", res["error"])
		}
		wantCerts(t, list(res["certs"]), keys)
		for _, k := range keys {
			t.Run(k.label, func(t *testing.T) {
				doc := f.path("browser " + k.label + ".odt")
				certFile := f.write(t, k.label+".der", k.cert.Raw)
				// soffice signs (office.py waits in signDocumentWithCertificate)
				// while the user approves in the browser.
				done := make(chan testbin.Result, 1)
				go func() {
					done <- testbin.Run(testbin.Cmd{Name: systemPython, Args: []string{script, "sign", office.pipe, certFile, doc},
						Dir: f.dir, Env: env, Limit: time.Minute})
				}()
				select {
				case u := <-opener.URLs:
					start := time.Now()
					out, err := chromiumtest.Drive(browser, u, chromiumtest.Plan{User: user, Password: password, PIN: pin,
						WantShown: []string{k.label, "soffice.bin — " + k.label}})
					if err != nil {
						t.Fatalf("browser (pages %v): %v", out.Pages, err)
					}
					t.Logf("browser: pages %v in %v; consent page:\n%s", out.Pages, time.Since(start).Round(time.Millisecond), out.Consent)
				case r := <-done:
					t.Fatalf("office.py sign ended without opening the browser: %v", r)
				case <-time.After(45 * time.Second):
					t.Fatal("soffice did not open the browser")
				}
				r := <-done
				t.Logf("office.py sign: %v", r.Took.Round(time.Millisecond))
				var res map[string]any
				if r.Err != nil {
					t.Fatalf("office.py sign: %v", r)
				}
				if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
					t.Fatalf("office.py sign: %v\n%v", err, r)
				}
				sign(t, res, k, doc)
				select {
				case u := <-opener.URLs:
					t.Errorf("a second browser flow for one signature: %s", u)
				default:
				}
			})
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{pin, password} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("the module log holds a secret (%d characters)", len(secret))
			}
		}
		if n := bytes.Count(b, []byte("credential authorized in the browser")); n != len(keys) {
			t.Errorf("%d authorizations in the browser in the module log, want %d", n, len(keys))
		}
	})

	t.Run("verify", func(t *testing.T) {
		if len(signed) == 0 {
			t.Skip("nothing signed")
		}
		// A verifier without the token: a database that trusts the rssp's
		// root and knows the issuing CA, no module. A copy of the first
		// document with content.xml changed must fail.
		env := setenv(slices.Clone(f.vars), "MOZILLA_CERTIFICATE_FOLDER", "sql:"+verifyDB)
		tampered := f.path("tampered.odt")
		tamper(t, signed[0], tampered)
		office := startOffice(t, f, "verify", env)
		defer office.stop()
		res := py(t, env, "", append([]string{"verify", office.pipe, tampered}, signed...)...)
		for i, doc := range signed {
			checkSignatures(t, res[doc], signedBy[i], "verifying "+filepath.Base(doc))
		}
		sigs := list(res[tampered])
		if len(sigs) != 1 || sigs[0].(map[string]any)["valid"] != false {
			t.Errorf("tampered document: %v, want one invalid signature", res[tampered])
		}
	})
	t.Logf("LibreOffice: %v", time.Since(begin).Round(time.Millisecond))
}

// needLibreOffice skips the test without soffice or Debian's python3 with
// uno, or fails it under CSCTOKEN_REQUIRE_PROGRAMS=1, as need does, naming
// the packages.
func needLibreOffice(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"soffice", systemPython, unoModule} {
		var err error
		if strings.Contains(tool, "/") {
			_, err = os.Stat(tool)
		} else {
			_, err = exec.LookPath(tool)
		}
		if err == nil {
			continue
		}
		msg := fmt.Sprintf("%s: %v (Debian: apt-get install libreoffice-writer-nogui python3-uno)", tool, err)
		if os.Getenv("CSCTOKEN_REQUIRE_PROGRAMS") == "1" {
			t.Fatalf("%s is required (CSCTOKEN_REQUIRE_PROGRAMS=1)", msg)
		}
		t.Skipf("%s; set CSCTOKEN_REQUIRE_PROGRAMS=1 to make this a failure", msg)
	}
}

// office is a headless soffice listening on a UNO pipe.
type office struct {
	pipe string
	stop func()
}

// startOffice starts soffice with a fresh profile. soffice is a script that
// runs oosplash, which runs soffice.bin: they share a new process group,
// which stop (and t.Cleanup) kills as a whole. A shell leads the group and
// reads a pipe that only this process writes to: if the test binary dies
// without its cleanups (a go test timeout, a broken output pipe), the read
// ends and the shell kills the group, so no soffice.bin outlives the test.
func startOffice(t *testing.T, f *fixture, name string, env []string) *office {
	t.Helper()
	o := &office{pipe: fmt.Sprintf("csctoken-lo-%s-%d-%d", name, os.Getpid(), time.Now().UnixNano())}
	profile := (&url.URL{Scheme: "file", Path: f.path("lo-profile-" + name)}).String()
	lifeline, alive, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "sh", "-c", `"$@" </dev/null & read -r _; kill -KILL 0`, "sh",
		"soffice", "--headless", "--invisible", "--norestore", "--nologo", "--nodefault", "--nolockcheck",
		"-env:UserInstallation="+profile, "--accept=pipe,name="+o.pipe+";urp;")
	cmd.Env, cmd.Dir = env, f.dir
	cmd.Stdin = lifeline
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Start()
	lifeline.Close()
	if err != nil {
		alive.Close()
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	o.stop = func() {
		once.Do(func() {
			cancel()
			err := cmd.Wait()
			// Whatever is left of the group (the shell was killed first).
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			alive.Close()
			t.Logf("soffice (%s): %v, stopped (%v)", name, time.Since(start).Round(time.Millisecond), err)
			if s := strings.TrimSpace(out.String()); s != "" && t.Failed() {
				t.Logf("soffice (%s) output:\n%s", name, s)
			}
		})
	}
	t.Cleanup(o.stop)
	return o
}

func setenv(env []string, key, value string) []string {
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(env, key+"="+value)
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// wantCerts checks that LibreOffice's personal certificates (base64 DER)
// are the credentials' certificates.
func wantCerts(t *testing.T, got []any, keys []*key) {
	t.Helper()
	for _, k := range keys {
		if !slices.Contains(got, any(base64.StdEncoding.EncodeToString(k.cert.Raw))) {
			t.Errorf("the certificate of %s is not among LibreOffice's %d personal certificates", k.label, len(got))
		}
	}
	if len(got) != len(keys) {
		t.Errorf("%d personal certificates, want %d", len(got), len(keys))
	}
}

// checkSignatures checks LibreOffice's verification of a document: one
// signature of the whole document, valid, by k's certificate, whose chain
// LibreOffice's NSS accepts.
func checkSignatures(t *testing.T, v any, k *key, where string) {
	t.Helper()
	sigs := list(v)
	if len(sigs) != 1 {
		t.Fatalf("%s: %d signatures, want 1: %v", where, len(sigs), v)
	}
	s, _ := sigs[0].(map[string]any)
	if s["valid"] != true {
		t.Errorf("%s: SignatureIsValid = %v", where, s["valid"])
	}
	if s["partial"] != false {
		t.Errorf("%s: PartialDocumentSignature = %v", where, s["partial"])
	}
	if s["certificateStatus"] != float64(certificateValid) {
		t.Errorf("%s: CertificateStatus = %v, want VALID (0)", where, s["certificateStatus"])
	}
	if s["signer"] != base64.StdEncoding.EncodeToString(k.cert.Raw) {
		t.Errorf("%s: the signer is not the certificate of %s", where, k.label)
	}
}

// checkODF reads the signature LibreOffice wrote into the document:
// META-INF/documentsignatures.xml, one XML-DSig signature with the
// algorithm of k's key, the credential's certificate in X509Data, and its
// chain (issuing CA and root) in XAdES CertificateValues.
func checkODF(t *testing.T, f *fixture, doc string, k *key) {
	t.Helper()
	zr, err := zip.OpenReader(doc)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var data []byte
	for _, e := range zr.File {
		if e.Name == "META-INF/documentsignatures.xml" {
			rc, err := e.Open()
			if err != nil {
				t.Fatal(err)
			}
			data, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if data == nil {
		t.Fatalf("no META-INF/documentsignatures.xml in %s", filepath.Base(doc))
	}
	var sigs struct {
		Signature []struct {
			Method struct {
				Algorithm string `xml:",attr"`
			} `xml:"SignedInfo>SignatureMethod"`
			Refs []struct {
				URI string `xml:",attr"`
			} `xml:"SignedInfo>Reference"`
			Value string   `xml:"SignatureValue"`
			Cert  string   `xml:"KeyInfo>X509Data>X509Certificate"`
			Chain []string `xml:"Object>QualifyingProperties>UnsignedProperties>UnsignedSignatureProperties>CertificateValues>EncapsulatedX509Certificate"`
		}
	}
	if err := xml.Unmarshal(data, &sigs); err != nil {
		t.Fatalf("documentsignatures.xml: %v", err)
	}
	if len(sigs.Signature) != 1 {
		t.Fatalf("%d signatures in documentsignatures.xml", len(sigs.Signature))
	}
	s := sigs.Signature[0]
	alg := "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	if k.cert.PublicKeyAlgorithm == x509.ECDSA {
		alg = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	}
	if s.Method.Algorithm != alg {
		t.Errorf("SignatureMethod %q, want %q", s.Method.Algorithm, alg)
	}
	var refs []string
	for _, r := range s.Refs {
		refs = append(refs, r.URI)
	}
	for _, want := range []string{"content.xml", "styles.xml", "meta.xml", "META-INF/manifest.xml"} {
		if !slices.Contains(refs, want) {
			t.Errorf("the signature does not cover %s (references %v)", want, refs)
		}
	}
	decode := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			t.Errorf("base64 in documentsignatures.xml: %v", err)
		}
		return b
	}
	if !bytes.Equal(decode(s.Cert), k.cert.Raw) {
		t.Errorf("X509Certificate is not the certificate of %s", k.label)
	}
	if len(decode(s.Value)) == 0 {
		t.Error("empty SignatureValue")
	}
	var chain [][]byte
	for _, c := range s.Chain {
		chain = append(chain, decode(c))
	}
	for _, want := range append([][]byte{k.cert.Raw}, rawCerts(f)...) {
		if !slices.ContainsFunc(chain, func(b []byte) bool { return bytes.Equal(b, want) }) {
			t.Errorf("XAdES CertificateValues (%d certificates) lack a certificate of the chain", len(chain))
		}
	}
}

func rawCerts(f *fixture) [][]byte {
	var out [][]byte
	for _, c := range f.cas {
		out = append(out, c.Raw)
	}
	return out
}

// tamper copies the ODF document src to dst with one word of content.xml
// changed.
func tamper(t *testing.T, src, dst string) {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	changed := false
	for _, e := range zr.File {
		if e.Name != "content.xml" {
			if err := zw.Copy(e); err != nil {
				t.Fatal(err)
			}
			continue
		}
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		altered := bytes.Replace(data, []byte("A contract"), []byte("A CONTRACT"), 1)
		changed = !bytes.Equal(altered, data)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: e.Modified})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(altered); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("content.xml: nothing to change")
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// countIn counts the occurrences of s in a file (0 when it does not exist).
func countIn(t *testing.T, path, s string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(s))
}
