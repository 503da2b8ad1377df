package windows

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	userName = "wine-user"
	password = "a wine password 4e1c"
	pin      = "246810"
	rsaLabel = "wine RSA-2048"
	ecLabel  = "wine EC P-256"
	token    = "csctoken on wine"
)

// TestWindows builds the Windows artifacts and runs them under wine, in
// order: the DLL's exports, the Authenticode signatures, the CLI, the DLL
// signing from a C host, C_Finalize during a signature, and the MSI.
func TestWindows(t *testing.T) {
	start := time.Now()
	b := windowsBuild(t)
	w := newWine(t, b.shim)

	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, userName, password)
	srv.AddCredential(t, service.CredentialSpec{User: userName, KeyType: keystore.RSA2048, PIN: pin, Multisign: 20, Description: rsaLabel})
	srv.AddCredential(t, service.CredentialSpec{User: userName, KeyType: keystore.ECP256, PIN: pin, Multisign: 20, Description: ecLabel})
	relay := startRelay(t, srv.Addr())
	caFile := filepath.Join(t.TempDir(), "tls-ca.pem")
	copyFile(t, filepath.Join(srv.Dir, "tls-ca.pem"), caFile)
	// The user's config, where the module and the CLI look on Windows
	// (%APPDATA%\csctoken\csctoken.toml; no CSCTOKEN_CONFIG).
	config := "[[service]]\n" +
		"name = \"" + token + "\"\n" +
		"url = \"https://" + relay.Addr() + "/csc/v2\"\n" +
		"auth = \"basic\"\n" +
		"username = \"" + userName + "\"\n" +
		"ca_file = '" + winPath(caFile) + "'\n" +
		"timeout = \"20s\"\n"
	userConfig := w.appData("csctoken", "csctoken.toml")
	if err := os.MkdirAll(filepath.Dir(userConfig), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(userConfig, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(userConfig)) })
	dll := winPath(b.dll)

	t.Run("exports", func(t *testing.T) { checkExports(t, b.dll) })

	t.Run("authenticode", func(t *testing.T) {
		for _, f := range []string{b.dll, b.exe, b.msi} {
			r := testbin.Run(testbin.Cmd{Name: "osslsigncode", Args: []string{"verify", "-CAfile", b.root, "-in", f}, Limit: time.Minute})
			if r.Err != nil || !strings.Contains(r.Stdout, "Signature verification: ok") || !strings.Contains(r.Stdout, "CN=release") {
				t.Errorf("osslsigncode verify %s: %v", filepath.Base(f), r)
			}
		}
	})

	t.Run("cli", func(t *testing.T) {
		exe := winPath(b.exe)
		r := w.run(2*time.Minute, password+"\n", exe, "login", "--password-stdin")
		if r.Err != nil {
			t.Fatalf("csctoken.exe login: %v", r)
		}
		r = w.run(2*time.Minute, "", exe, "status")
		if r.Err != nil {
			t.Fatalf("csctoken.exe status: %v", r)
		}
		t.Logf("csctoken.exe status (%v):\n%s", r.Took.Round(time.Millisecond), r.Stdout)
		// The token is in wine's Credential Manager (go-keyring, wincred).
		for _, want := range []string{`AppData\Roaming\csctoken\csctoken.toml`, `service "` + token + `"`,
			"reachable: yes", "login: " + userName, "credentials: 2", "token kept in: the OS keyring"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("csctoken.exe status: no %q", want)
			}
		}
		r = w.run(2*time.Minute, "", exe, "list")
		if r.Err != nil || !strings.Contains(r.Stdout, rsaLabel) || !strings.Contains(r.Stdout, ecLabel) {
			t.Errorf("csctoken.exe list: %v", r)
		}
	})

	t.Run("sign", func(t *testing.T) {
		data := []byte("signed by csctoken.dll under wine")
		hash := sha256.Sum256(data)
		h := hex.EncodeToString(hash[:])
		got := w.session(t, b.session, dll,
			"init", "slots", "open 0", "login "+pin, "cert "+rsaLabel, "cert "+ecLabel,
			"sign SHA256-RSA-PKCS "+hex.EncodeToString(data)+" "+rsaLabel,
			"sign RSA-PKCS-PSS "+h+" "+rsaLabel,
			"sign ECDSA "+h+" "+ecLabel,
			"sign ECDSA-SHA256 "+hex.EncodeToString(data)+" "+ecLabel,
			"finalize")
		for i, want := range []string{"CKR_OK", "CKR_OK 1", "CKR_OK", "CKR_OK"} {
			if got[i] != want {
				t.Fatalf("answer %d: %q, want %q (all: %q)", i, got[i], want, got)
			}
		}
		rsaCert, ecCert := certOf(t, got[4]), certOf(t, got[5])
		verify(t, "RSA PKCS#1 v1.5", rsaCert, data, sigOf(t, got[6]))
		verify(t, "RSA-PSS", rsaCert, data, sigOf(t, got[7]), "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32")
		verify(t, "ECDSA", ecCert, data, derECDSA(t, sigOf(t, got[8])))
		verify(t, "ECDSA-SHA256", ecCert, data, derECDSA(t, sigOf(t, got[9])))
		if got[10] != "CKR_OK" {
			t.Errorf("finalize: %q", got[10])
		}
	})

	t.Run("finalize-while-signing", func(t *testing.T) {
		// The relay holds every request once the session is logged in:
		// C_Sign waits on the network until C_Finalize, which must return
		// at once and make C_Sign return.
		h := w.start(t, b.session, dll)
		for _, c := range []string{"init", "open 0", "login " + pin} {
			if got := h.call(t, c); got != "CKR_OK" {
				t.Fatalf("%s: %q", c, got)
			}
		}
		held := relay.heldCount()
		relay.setHold(true)
		defer relay.setHold(false)
		got := strings.Fields(h.call(t, "sign-finalize 1500 SHA256-RSA-PKCS "+hex.EncodeToString([]byte("never signed"))+" "+rsaLabel))
		if len(got) != 3 {
			t.Fatalf("sign-finalize: %q", got)
		}
		ms, _ := strconv.Atoi(got[2])
		t.Logf("C_Finalize took %d ms while C_Sign waited; C_Sign then answered %s", ms, got[1])
		if got[0] != "CKR_OK" || ms > 1000 {
			t.Errorf("C_Finalize while signing: %s after %d ms", got[0], ms)
		}
		if got[1] != "CKR_CRYPTOKI_NOT_INITIALIZED" && got[1] != "CKR_FUNCTION_CANCELED" {
			t.Errorf("C_Sign after C_Finalize: %s", got[1])
		}
		if relay.heldCount() == held {
			t.Errorf("the signature never reached the network: nothing was held")
		}
		h.quit(t)
	})

	t.Run("msi", func(t *testing.T) { checkMSI(t, w, b, config) })

	t.Logf("the Windows test took %v", time.Since(start).Round(time.Second))
}

// checkExports: the DLL exports exactly the PKCS#11 functions.
func checkExports(t *testing.T, dll string) {
	out, err := exec.Command("x86_64-w64-mingw32-objdump", "-p", dll).Output()
	if err != nil {
		t.Fatalf("objdump -p: %v", err)
	}
	text := string(out)
	i := strings.Index(text, "[Ordinal/Name Pointer] Table")
	if i < 0 {
		t.Fatalf("objdump -p shows no export table:\n%s", text)
	}
	var names []string
	for _, line := range strings.Split(text[i:], "\n")[1:] {
		m := regexp.MustCompile(`^\s*\[\s*\d+\]\s+(\S+)$`).FindStringSubmatch(line)
		if m == nil {
			break
		}
		names = append(names, m[1])
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "C_") {
			t.Errorf("csctoken.dll exports %s", n)
		}
	}
	for _, n := range []string{"C_GetFunctionList", "C_GetInterfaceList", "C_GetInterface", "C_Initialize", "C_Sign", "C_MessageVerifyFinal"} {
		if !slices.Contains(names, n) {
			t.Errorf("csctoken.dll does not export %s", n)
		}
	}
	if len(names) != 92 { // 68 of PKCS#11 2.40, 24 of 3.0
		t.Errorf("csctoken.dll exports %d names, want 92: %v", len(names), names)
	}
}

func certOf(t *testing.T, answer string) *x509.Certificate {
	t.Helper()
	rv, h, _ := strings.Cut(answer, " ")
	if rv != "CKR_OK" {
		t.Fatalf("cert: %q", answer)
	}
	der, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sigOf(t *testing.T, answer string) []byte {
	t.Helper()
	rv, h, _ := strings.Cut(answer, " ")
	if rv != "CKR_OK" {
		t.Fatalf("sign: %q", answer)
	}
	sig, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// derECDSA converts PKCS#11's r‖s to the DER that openssl verifies.
func derECDSA(t *testing.T, rs []byte) []byte {
	t.Helper()
	if len(rs) != 64 {
		t.Fatalf("ECDSA P-256 signature of %d bytes", len(rs))
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// verify checks sig over data with openssl dgst -sha256 and the
// certificate's public key.
func verify(t *testing.T, what string, c *x509.Certificate, data, sig []byte, opts ...string) {
	t.Helper()
	dir := t.TempDir()
	pub, err := x509.MarshalPKIXPublicKey(c.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"pub.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"data":    data, "sig": sig,
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"dgst", "-sha256", "-verify", filepath.Join(dir, "pub.pem"), "-signature", filepath.Join(dir, "sig")}, opts...)
	args = append(args, filepath.Join(dir, "data"))
	r := testbin.Run(testbin.Cmd{Name: "openssl", Args: args, Limit: 30 * time.Second})
	if r.Err != nil || !strings.Contains(r.Stdout, "Verified OK") {
		t.Errorf("%s: openssl does not verify the signature: %v", what, r)
		return
	}
	t.Logf("%s: signed by csctoken.dll under wine, verified by openssl", what)
}

const policyKey = `HKLM\SOFTWARE\Policies\Mozilla\Firefox\SecurityDevices\Add`

// checkMSI installs the MSI silently, checks the files and the Firefox
// policy value, signs with the installed DLL and the machine config in
// %ProgramData%, upgrades to a newer MSI (MajorUpgrade: one product
// left), and uninstalls: no file, directory or policy value is left.
func checkMSI(t *testing.T, w *wine, b build, config string) {
	installed := w.drive("Program Files", "csctoken")
	installedDLL := `C:\Program Files\csctoken\csctoken.dll`
	if r := w.run(5*time.Minute, "", "msiexec", "/i", winPath(b.msi), "/qn"); r.Err != nil {
		t.Fatalf("msiexec /i: %v", r)
	}
	for _, f := range []string{b.dll, b.exe} {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join(installed, filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("installed %s: %v (same as built: %v)", filepath.Base(f), err, bytes.Equal(got, want))
		}
	}
	r := w.run(time.Minute, "", "reg", "query", policyKey, "/v", "csctoken")
	if r.Err != nil || !strings.Contains(r.Stdout, installedDLL) {
		t.Errorf("reg query %s /v csctoken: %v", policyKey, r)
	}
	t.Logf("Firefox policy: %s", strings.TrimSpace(r.Stdout))

	// The machine's config only (what IT deploys): the installed DLL and
	// CLI find it in %ProgramData%.
	userConfig := w.appData("csctoken", "csctoken.toml")
	os.Remove(userConfig)
	machineConfig := w.drive("ProgramData", "csctoken", "csctoken.toml")
	if err := os.MkdirAll(filepath.Dir(machineConfig), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(machineConfig, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(filepath.Dir(machineConfig))
	r = w.run(2*time.Minute, "", `C:\Program Files\csctoken\csctoken.exe`, "status")
	if r.Err != nil || !strings.Contains(r.Stdout, `ProgramData\csctoken\csctoken.toml`) || !strings.Contains(r.Stdout, "credentials: 2") {
		t.Errorf("installed csctoken.exe status: %v", r)
	}
	data := []byte("signed by the installed csctoken.dll")
	got := w.session(t, b.session, installedDLL, "init", "slots", "open 0", "login "+pin, "cert "+rsaLabel,
		"sign SHA256-RSA-PKCS "+hex.EncodeToString(data)+" "+rsaLabel, "finalize")
	if got[0] != "CKR_OK" || got[1] != "CKR_OK 1" || got[3] != "CKR_OK" {
		t.Fatalf("installed DLL: %q", got)
	}
	verify(t, "installed DLL, RSA PKCS#1 v1.5", certOf(t, got[4]), data, sigOf(t, got[5]))

	// A newer MSI replaces the installed one.
	newer := filepath.Join(t.TempDir(), "csctoken-0.9.1-x64.msi")
	wixl := exec.Command("wixl", "-a", "x64", "-D", "Version=0.9.1", "-D", "SourceDir=.", "-o", newer,
		filepath.Join(testbin.Root(t), "installer", "windows", "csctoken.wxs"))
	wixl.Dir = filepath.Dir(b.dll)
	if out, err := wixl.CombinedOutput(); err != nil {
		t.Fatalf("wixl: %v\n%s", err, out)
	}
	if r := w.run(5*time.Minute, "", "msiexec", "/i", winPath(newer), "/qn"); r.Err != nil {
		t.Fatalf("msiexec /i (upgrade): %v", r)
	}
	if got := w.products(t); len(got) != 1 || got[0] != "0.9.1" {
		t.Errorf("after the upgrade, products named csctoken: %q (want one, 0.9.1)", got)
	}
	if _, err := os.Stat(filepath.Join(installed, "csctoken.dll")); err != nil {
		t.Errorf("after the upgrade: %v", err)
	}

	if r := w.run(5*time.Minute, "", "msiexec", "/x", winPath(newer), "/qn"); r.Err != nil {
		t.Fatalf("msiexec /x: %v", r)
	}
	if _, err := os.Stat(installed); !os.IsNotExist(err) {
		left, _ := os.ReadDir(installed)
		t.Errorf("after uninstall, %s is still there (%v): %v", installed, err, left)
	}
	if r := w.run(time.Minute, "", "reg", "query", policyKey, "/v", "csctoken"); r.Err == nil {
		t.Errorf("after uninstall, the policy value is still there:\n%s", r.Stdout)
	}
	if got := w.products(t); len(got) != 0 {
		t.Errorf("after uninstall, products named csctoken: %q", got)
	}
}

// products returns the DisplayVersion of each installed product named
// csctoken (the Uninstall keys of the registry).
func (w *wine) products(t *testing.T) []string {
	t.Helper()
	r := w.run(time.Minute, "", "reg", "query", `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`, "/s")
	if r.Err != nil {
		t.Fatalf("reg query Uninstall: %v", r)
	}
	var versions []string
	for _, key := range strings.Split(strings.ReplaceAll(r.Stdout, "\r\n", "\n"), "\n\n") {
		if !regexp.MustCompile(`(?m)^\s*DisplayName\s+REG_SZ\s+csctoken\s*$`).MatchString(key) {
			continue
		}
		v := regexp.MustCompile(`(?m)^\s*DisplayVersion\s+REG_SZ\s+(\S+)`).FindStringSubmatch(key)
		if v == nil {
			versions = append(versions, "?")
			continue
		}
		versions = append(versions, v[1])
	}
	return versions
}
