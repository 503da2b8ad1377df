package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/internal/rssptest"
	rsspconfig "github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user     = "alice"
	password = "correct horse battery staple"
	pin      = "123456"
	svcName  = "Test RSSP"
)

// useTempStore keeps tokens in files of a temporary directory, never in
// the keyring of whoever runs the tests.
func useTempStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	old := newTokenStore
	newTokenStore = func(log *slog.Logger) (*tokenstore.Store, error) {
		return tokenstore.New(tokenstore.Options{Dir: dir, NoKeyring: true, Logger: log})
	}
	t.Cleanup(func() { newTokenStore = old })
	t.Setenv("CSCTOKEN_LOG", "")
	t.Setenv("CSCTOKEN_CONFIG", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the module's last failures
	return dir
}

// writeConfig writes a module config with one service and returns its path.
func writeConfig(t *testing.T, url, caFile, extra string) string {
	t.Helper()
	dir := t.TempDir()
	ca := ""
	if caFile != "" {
		ca = fmt.Sprintf("ca_file = %q\n", caFile)
	}
	text := fmt.Sprintf(`cache_dir = %q

[[service]]
name = %q
url = %q
auth = "basic"
username = %q
%stimeout = "5s"
%s`, filepath.Join(dir, "cache"), svcName, url, user, ca, extra)
	path := filepath.Join(dir, "csctoken.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// result is one run of the command.
type result struct {
	stdout, stderr string
	err            error
}

func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(args, strings.NewReader(stdin), &out, &errb)
	if testing.Verbose() {
		t.Logf("csctoken %s\n--- stdout\n%s--- stderr\n%s--- err %v", strings.Join(args, " "), out.String(), errb.String(), err)
	}
	return result{out.String(), errb.String(), err}
}

func (r result) must(t *testing.T) result {
	t.Helper()
	if r.err != nil {
		t.Fatalf("err %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	return r
}

func (r result) contains(t *testing.T, where string, subs ...string) {
	t.Helper()
	text := r.stdout
	if where == "stderr" {
		text = r.stderr
	} else if where == "any" {
		text = r.stdout + r.stderr
		if r.err != nil {
			text += r.err.Error()
		}
	}
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s lacks %q:\n%s", where, s, text)
		}
	}
}

// certsFromPEM reads `list --pem`: the end-entity certificate of each
// credential, by credential ID.
func certsFromPEM(t *testing.T, out string) map[string]*x509.Certificate {
	t.Helper()
	certs := map[string]*x509.Certificate{}
	for _, part := range strings.Split(out, "# ")[1:] {
		header, _, _ := strings.Cut(part, "\n")
		fields := strings.Fields(strings.TrimPrefix(header, svcName+":"))
		block, _ := pem.Decode([]byte(part))
		if len(fields) == 0 || block == nil {
			t.Fatalf("unexpected --pem output:\n%s", out)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs[fields[0]] = cert
	}
	return certs
}

func verifyFile(t *testing.T, cert *x509.Certificate, mech string, msg, sig []byte) {
	t.Helper()
	digest := sha256.Sum256(msg)
	var err error
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if mech == "rsa-pss" {
			err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256})
		} else {
			err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			err = errors.New("ECDSA signature (DER) does not verify")
		}
	}
	if err != nil {
		t.Errorf("%s signature: %v", mech, err)
	}
}

// verifyOpenSSL checks a signature with openssl, when it is installed.
func verifyOpenSSL(t *testing.T, cert *x509.Certificate, msgFile, sigFile string) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not installed; verified with Go only")
		return
	}
	pubDER, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "dgst", "-sha256", "-verify", pub, "-signature", sigFile, msgFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified OK") {
		t.Errorf("openssl dgst -verify: %v: %s", err, out)
	}
}

func TestCLIFlow(t *testing.T) {
	storeDir := useTempStore(t)
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	rsaID, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "rsa-2048", PIN: pin, Multisign: 5, Description: "RSA key"})
	ecID, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "ec-p256", PIN: pin, Description: "EC key",
		SignatureQualifier: "eu_eidas_qes"})
	conf := writeConfig(t, srv.URL, filepath.Join(srv.Dir, "tls-ca.pem"), "")
	cfgFlag := "--config=" + conf

	// Not logged in yet.
	runCLI(t, "", "status", cfgFlag).must(t).contains(t, "stdout", "reachable: yes", "not logged in", "csctoken login --service 'Test RSSP'")
	r := runCLI(t, "", "list", cfgFlag)
	if r.err == nil {
		t.Fatal("list without a login succeeded")
	}
	r.contains(t, "stderr", "not logged in", "csctoken login")
	r = runCLI(t, "wrong\n", "doctor", cfgFlag)
	if r.err == nil {
		t.Error("doctor without a login found no problem")
	}
	r.contains(t, "stdout", "PROBLEM  not logged in to the service")

	// Login: a wrong password, then the right one.
	r = runCLI(t, "wrong\n", "login", "--password-stdin", cfgFlag)
	if r.err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	r.contains(t, "stderr", "wrong user name or password")
	runCLI(t, password+"\n", "login", "--service", svcName, "--password-stdin", cfgFlag).must(t).
		contains(t, "stdout", `Logged in to "Test RSSP" as alice`, "refresh token", "token kept in the file "+storeDir)

	// Status, list, doctor.
	runCLI(t, "", "status", cfgFlag).must(t).contains(t, "stdout",
		`reachable: yes: "csctoken test RSSP", CSC 2.0.0.2`, "login: alice; access token valid until",
		"token kept in: the file "+storeDir, "credentials: 2", rsaID+` "RSA key": certificate valid`, ecID+` "EC key": certificate valid`)
	list := runCLI(t, "", "list", cfgFlag).must(t)
	list.contains(t, "stdout", "Test RSSP ("+srv.URL, rsaID, ecID, "RSA 2048", "EC P-256", "PIN", "CN=alice",
		"credential:  "+ecID+"\n    key:         EC P-256, SCAL 1, authorized with PIN\n    qualifier:   eu_eidas_qes\n")
	rsaBlock := regexp.MustCompile(`(?m)^  "RSA key"\n    credential:  ` + rsaID + `\n    key: +RSA 2048, SCAL 1, authorized with PIN\n    certificate: .*CN=alice.*\n    CKA_ID: +([0-9a-f]{40}) +\(pkcs11-tool --id ([0-9a-f]{40})\)\n    CKA_LABEL: +RSA key\n    URI: +(pkcs11:token=Test%20RSSP;id=(%[0-9A-F]{2}){20};type=private)\n`)
	m := rsaBlock.FindStringSubmatch(list.stdout)
	if m == nil || m[1] != m[2] {
		t.Fatalf("list block of the RSA key not as expected:\n%s", list.stdout)
	}
	if want := "pkcs11:token=Test%20RSSP;id=%" + strings.ToUpper(strings.Join(regexp.MustCompile("..").FindAllString(m[1], -1), "%")) + ";type=private"; m[3] != want {
		t.Errorf("URI %s, want %s", m[3], want)
	}
	certs := certsFromPEM(t, runCLI(t, "", "list", "--pem", cfgFlag).must(t).stdout)
	if certs[rsaID] == nil || certs[ecID] == nil {
		t.Fatalf("list --pem gave certificates for %v", certs)
	}
	runCLI(t, "", "doctor", cfgFlag).must(t).contains(t, "stdout",
		`slot 0: "Test RSSP"`, "service reachable", "logged in as alice", "credentials listed",
		`key "RSA key"`, "2 user certificate(s)", "CKM_SHA256_RSA_PKCS", "CKM_ECDSA", "No problems found.")

	// Sign through the module, each mechanism.
	dir := t.TempDir()
	msgFile := filepath.Join(dir, "doc.txt")
	msg := bytes.Repeat([]byte("a document to sign\n"), 10000) // several SignUpdate chunks
	if err := os.WriteFile(msgFile, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		mech  string
		which []string
		cert  *x509.Certificate
	}{
		{"ok rsa-pkcs by credential", "rsa-pkcs", []string{"--credential", rsaID}, certs[rsaID]},
		{"ok rsa-pss by label", "rsa-pss", []string{"--label", "RSA key"}, certs[rsaID]},
		{"ok ecdsa by credential", "ecdsa", []string{"--credential", ecID}, certs[ecID]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sigFile := filepath.Join(dir, tc.mech+".sig")
			args := append([]string{"sign", cfgFlag, "--service", svcName, "--mechanism", tc.mech,
				"--in", msgFile, "--out", sigFile, "--pin-stdin"}, tc.which...)
			runCLI(t, pin+"\n", args...).must(t).contains(t, "stderr", "Signed "+msgFile)
			sig, err := os.ReadFile(sigFile)
			if err != nil {
				t.Fatal(err)
			}
			verifyFile(t, tc.cert, tc.mech, msg, sig)
			if tc.mech != "rsa-pss" {
				verifyOpenSSL(t, tc.cert, msgFile, sigFile)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"fail wrong PIN", "000000\n", []string{"--mechanism", "ecdsa", "--credential", ecID}, "wrong PIN"},
		{"fail mechanism of another key type", pin + "\n", []string{"--mechanism", "ecdsa", "--credential", rsaID}, "is an RSA key"},
		{"fail several keys", pin + "\n", []string{"--mechanism", "ecdsa"}, "several keys"},
		{"fail unknown credential", pin + "\n", []string{"--mechanism", "ecdsa", "--credential", "nope"}, "no credential nope"},
		{"fail unknown mechanism", pin + "\n", []string{"--mechanism", "dsa"}, "want rsa-pkcs, rsa-pss or ecdsa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"sign", cfgFlag, "--in", msgFile, "--out", filepath.Join(dir, "x.sig"), "--pin-stdin"}, tc.args...)
			r := runCLI(t, tc.stdin, args...)
			if r.err == nil {
				t.Fatal("sign succeeded")
			}
			r.contains(t, "any", tc.want)
		})
	}

	// Logout: revoked and forgotten; the module is logged out too.
	runCLI(t, "", "logout", cfgFlag).must(t).contains(t, "stdout", `Logged out of "Test RSSP"`)
	runCLI(t, "", "status", cfgFlag).must(t).contains(t, "stdout", "login: not logged in", "token kept in: no place")
	runCLI(t, "", "logout", cfgFlag).must(t).contains(t, "stdout", "Not logged in")
	r = runCLI(t, pin+"\n", "sign", cfgFlag, "--mechanism", "ecdsa", "--credential", ecID, "--in", msgFile, "--out", filepath.Join(dir, "y.sig"), "--pin-stdin")
	if r.err == nil {
		t.Fatal("sign after logout succeeded")
	}
	r.contains(t, "any", "not logged in", "csctoken login --service 'Test RSSP'")
}

func TestCLIServiceProblems(t *testing.T) {
	useTempStore(t)
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String() + "/csc/v2"
	ln.Close()

	tests := []struct {
		name string
		url  string
		ca   string
		want []string
	}{
		{"fail unreachable", closed, filepath.Join(srv.Dir, "tls-ca.pem"), []string{"service unreachable", ln.Addr().String()}},
		{"fail TLS names the certificate", srv.URL, "", []string{"the server's certificate", "is not trusted", "set ca_file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conf := writeConfig(t, tc.url, tc.ca, "")
			r := runCLI(t, password+"\n", "login", "--password-stdin", "--config", conf)
			if r.err == nil {
				t.Fatal("login succeeded")
			}
			r.contains(t, "stderr", tc.want...)
			st := runCLI(t, "", "status", "--config", conf)
			st.contains(t, "stdout", "reachable: no", "last failure: ", "what to do: the service at ")
			if !errors.As(st.err, new(silentError)) {
				t.Errorf("status of an unreachable service: err %v, want exit 1", st.err)
			}
			r = runCLI(t, "", "doctor", "--config", conf)
			if r.err == nil {
				t.Error("doctor found no problem")
			}
			r.contains(t, "stdout", "PROBLEM  service unreachable")
		})
	}
}

func TestCLIDoctorBrokenConfig(t *testing.T) {
	useTempStore(t)
	tests := []struct {
		name  string
		extra string
		want  []string
	}{
		{"fail unknown key", "colour = \"red\"\n", []string{"PROBLEM  service[0].colour: unknown key", "no usable [[service]]"}},
		{"fail bad timeout", "list_timeout = \"soon\"\n", []string{"PROBLEM  service[0].list_timeout", "not a duration"}},
		{"fail endless ca_file", "ca_file = \"/dev/urandom\"\n", []string{"PROBLEM  service[0].ca_file: /dev/urandom: not a regular file"}},
		{"fail oauth2 without client_id", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conf := writeConfig(t, "https://127.0.0.1:1/csc/v2", "", tc.extra)
			if tc.name == "fail oauth2 without client_id" {
				data, _ := os.ReadFile(conf)
				_ = os.WriteFile(conf, bytes.Replace(data, []byte(`auth = "basic"`), []byte(`auth = "oauth2"`), 1), 0o600)
				tc.want = []string{`PROBLEM  service[0].client_id: missing`}
			}
			r := runCLI(t, "", "doctor", "--config", conf)
			var se silentError
			if !errors.As(r.err, &se) {
				t.Fatalf("doctor err = %v, want a failure after its report", r.err)
			}
			r.contains(t, "stdout", append(tc.want, "problem(s) found")...)
		})
	}
	r := runCLI(t, "", "doctor", "--config", filepath.Join(t.TempDir(), "missing.toml"))
	if r.err == nil {
		t.Fatal("doctor with a missing config succeeded")
	}
	r.contains(t, "stdout", "PROBLEM", "missing.toml")
}

func TestCLIMisc(t *testing.T) {
	useTempStore(t)
	tests := []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"ok version", []string{"version"}, false, "csctoken dev"},
		{"ok help", []string{"help"}, false, "Usage:"},
		{"ok --help", []string{"--help"}, false, "Available Commands"},
		{"ok sign --help", []string{"sign", "--help"}, false, "--mechanism MECHANISM"},
		{"ok --version", []string{"--version"}, false, "csctoken dev (PKCS#11 library"},
		{"fail register without a target", []string{"register"}, true, "--nss DIR, --firefox, --thunderbird, --p11-kit and/or --java FILE"},
		{"fail no command", nil, true, "missing command"},
		{"fail unknown command", []string{"frobnicate"}, true, "unknown command"},
		{"fail unknown flag", []string{"status", "--colour"}, true, "unknown flag: --colour"},
		{"fail sign without --out", []string{"sign", "--in", "x", "--mechanism", "ecdsa"}, true, "--in and --out are required"},
		{"fail missing config", []string{"status", "--config", "/nonexistent/csctoken.toml"}, false, "--config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", tc.args...)
			var ue usageError
			if tc.usage != errors.As(r.err, &ue) {
				t.Errorf("err = %v, usage error %v", r.err, tc.usage)
			}
			r.contains(t, "any", tc.want)
		})
	}
}

func TestCLIExpiredLogin(t *testing.T) {
	useTempStore(t)
	srv := rssptest.Start(t, rssptest.Options{Edit: func(c *rsspconfig.Config) {
		c.Security.AccessTokenTTL.Duration = time.Second
		c.Security.RefreshTokenTTL.Duration = time.Second
	}})
	srv.AddUser(t, user, password)
	ecID, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "ec-p256", PIN: pin, Description: "EC key"})
	conf := writeConfig(t, srv.URL, filepath.Join(srv.Dir, "tls-ca.pem"), "")
	runCLI(t, password+"\n", "login", "--password-stdin", "--config", conf).must(t)
	time.Sleep(1500 * time.Millisecond)
	st := runCLI(t, "", "status", "--config", conf)
	st.contains(t, "stdout", "login: alice, expired or revoked (run `csctoken login --service 'Test RSSP'`)")
	if !errors.As(st.err, new(silentError)) {
		t.Errorf("status with an expired login: err %v, want exit 1", st.err)
	}
	msg := filepath.Join(t.TempDir(), "m")
	if err := os.WriteFile(msg, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, pin+"\n", "sign", "--config", conf, "--mechanism", "ecdsa", "--credential", ecID, "--in", msg, "--out", msg+".sig", "--pin-stdin")
	if r.err == nil {
		t.Fatal("sign with an expired login succeeded")
	}
	r.contains(t, "any", "not logged in", "csctoken login --service 'Test RSSP'")
}

// TestCLILogoutOffline: with the service gone, logout forgets the token
// here, succeeds and says that the service did not revoke it.
func TestCLILogoutOffline(t *testing.T) {
	useTempStore(t)
	caFile := filepath.Join(t.TempDir(), "tls-ca.pem")
	var conf string
	outer := t
	t.Run("log in while the service runs", func(t *testing.T) {
		srv := rssptest.Start(t, rssptest.Options{}) // stopped when this subtest ends
		srv.AddUser(t, user, password)
		ca, err := os.ReadFile(filepath.Join(srv.Dir, "tls-ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(caFile, ca, 0o600); err != nil {
			t.Fatal(err)
		}
		conf = writeConfig(outer, srv.URL, caFile, "")
		runCLI(t, password+"\n", "login", "--password-stdin", "--config", conf).must(t)
	})
	if conf == "" {
		t.Fatal("no login")
	}
	r := runCLI(t, "", "logout", "--config", conf).must(t)
	r.contains(t, "stdout", `Logged out of "Test RSSP": token forgotten here.`)
	r.contains(t, "stderr", "could not revoke the token", "stays valid there until")
	runCLI(t, "", "status", "--config", conf).contains(t, "stdout", "reachable: no", "login: not logged in", "token kept in: no place")
}

// TestStatusFailover: a service whose first node is down answers through
// the node of failover_urls, and status names both.
func TestStatusFailover(t *testing.T) {
	useTempStore(t)
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	down := "https://127.0.0.1:1/csc/v2" // nothing listens on port 1
	conf := writeConfig(t, down, filepath.Join(srv.Dir, "tls-ca.pem"), fmt.Sprintf("failover_urls = [%q]\n", srv.URL))
	runCLI(t, password+"\n", "login", "--password-stdin", "--config="+conf).must(t)
	runCLI(t, "", "status", "--config="+conf).must(t).contains(t, "stdout", "failover: "+srv.URL, "reachable: yes", "login: alice; access token valid")
	runCLI(t, "", "doctor", "--config="+conf).contains(t, "stdout", "failover to "+srv.URL)
}
