package packages

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	debModule    = "/usr/lib/x86_64-linux-gnu/pkcs11/libcsctoken.so"
	p11kitProxy  = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
	systemConfig = "/etc/csctoken/csctoken.toml"
	moduleFile   = "/usr/share/p11-kit/modules/csctoken.module"
	firefoxJSON  = "/etc/firefox/policies/policies.json"
	tbirdJSON    = "/etc/thunderbird/policies/policies.json"

	testUser = "alice"
	password = "package test password 5c1e"
	pin      = "740215"
	label    = "Package test token"
	keyLabel = "RSA key"

	adminDevice = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
)

// adminPolicy is the Firefox policy the machine's administrator had before
// the package came.
var adminPolicy = []byte(`{
  "policies": {
    "DisableTelemetry": true,
    "SecurityDevices": {"Add": {"Admin token": "` + adminDevice + `"}}
  }
}
`)

// TestDeb installs the csctoken .deb, uses the module through p11-kit with
// a real rssp, upgrades it to a newer build and purges it:
//
//   - dpkg -i: the files where installer/README.md says, stripped; p11-kit
//     list-modules shows csctoken; the Firefox policy holds our entry and the
//     administrator's; Thunderbird's policy is created with ours.
//   - /etc/csctoken/csctoken.toml edited to name a test rssp; csctoken
//     login; pkcs11-tool through p11-kit-proxy.so lists the token and signs,
//     openssl verifies.
//   - dpkg -i of a newer build keeps the edited conffile and the entries.
//   - dpkg -P leaves none of the package's files, no .module, no entry of
//     ours; the administrator's policy is as it was, Thunderbird's is gone.
func TestDeb(t *testing.T) {
	gate(t, "dpkg", "p11-kit", "pkcs11-tool", "openssl", p11kitProxy)
	deb := dist(t, "csctoken_*_amd64.deb")
	dir := t.TempDir()
	if installed("csctoken") {
		t.Fatal("csctoken is installed on this machine already: the test would replace it (dpkg -P csctoken first)")
	}
	keepFile(t, firefoxJSON)
	keepFile(t, tbirdJSON)
	t.Cleanup(func() { purge(t, "csctoken") }) // runs before the files are put back
	writeFile(t, firefoxJSON, adminPolicy, 0o644)
	os.Remove(tbirdJSON)

	out := must(t, "dpkg", "-i", deb)
	t.Logf("dpkg -i: %s", out)
	files := packageFiles(t, "csctoken")
	for _, f := range []string{debModule, "/usr/bin/csctoken", moduleFile, systemConfig,
		"/usr/share/man/man1/csctoken.1.gz", "/usr/share/doc/csctoken/copyright", "/usr/share/doc/csctoken/changelog.Debian.gz"} {
		if !files[f] {
			t.Errorf("the package has no %s", f)
		}
		if _, err := os.Stat(f); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	stripped(t, debModule)
	stripped(t, "/usr/bin/csctoken")
	if conf := must(t, "dpkg-query", "-W", "-f=${Conffiles}", "csctoken"); !strings.Contains(conf, systemConfig) {
		t.Errorf("%s is no conffile: %q", systemConfig, conf)
	}

	// As shipped, the system config has no service: the module loads
	// without slots.
	if mods := must(t, "p11-kit", "list-modules"); !strings.Contains(mods, "csctoken: libcsctoken.so") {
		t.Errorf("p11-kit list-modules does not show csctoken:\n%s", mods)
	}
	checkPolicies(t, true)
	noNetwork(t, dir)
	firefoxLoads(t, dir)

	// The installed csctoken registers the installed module (not a build
	// tree's) when no --library is given.
	javaCfg := filepath.Join(dir, "java.cfg")
	if r := run(t, time.Minute, privateEnv(t, filepath.Join(dir, "register")), "", "/usr/bin/csctoken", "register", "--java", javaCfg); r.Err != nil {
		t.Errorf("csctoken register --java: %v", r)
	} else if cfg, _ := os.ReadFile(javaCfg); !strings.Contains(string(cfg), "library = "+debModule+"\n") {
		t.Errorf("csctoken register --java wrote:\n%s", cfg)
	}

	// IT puts the service into the system config; the user logs in once.
	srv := rssptest.Start(t, rssptest.Options{Backend: rssptest.Soft})
	ctx := context.Background()
	if _, err := srv.App.Service.AddUser(ctx, testUser, password); err != nil {
		t.Fatal(err)
	}
	cred, _, err := srv.App.Service.AddCredential(ctx, service.CredentialSpec{User: testUser, PIN: pin, KeyType: "rsa-2048", Multisign: 5, Description: keyLabel})
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cred.CertChain[0]})
	caFile := filepath.Join(dir, "rssp-ca.pem")
	ca, err := os.ReadFile(filepath.Join(srv.Dir, "tls-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, caFile, ca, 0o644)
	edited := fmt.Sprintf(`# edited by IT (the package test)
[[service]]
name = %q
url = %q
auth = "basic"
username = %q
credential_auth = "pin"
ca_file = %q
timeout = "20s"
list_timeout = "20s"
`, label, srv.URL, testUser, caFile)
	writeFile(t, systemConfig, []byte(edited), 0o644)
	env := privateEnv(t, dir)
	if r := run(t, time.Minute, env, password+"\n", "/usr/bin/csctoken", "login", "--password-stdin"); r.Err != nil {
		t.Fatalf("csctoken login: %v", r)
	}
	signThroughProxy(t, env, dir, certPEM)

	// A newer build: the edited conffile and the entries stay.
	newer := newerBuild(t, deb)
	out = must(t, "dpkg", "-i", newer)
	t.Logf("dpkg -i (upgrade): %s", out)
	if v := must(t, "dpkg-query", "-W", "-f=${Version}", "csctoken"); !strings.HasSuffix(newer, "csctoken_"+v+"_amd64.deb") {
		t.Errorf("installed version %s after the upgrade to %s", v, filepath.Base(newer))
	}
	if got, _ := os.ReadFile(systemConfig); string(got) != edited {
		t.Errorf("the upgrade changed the edited %s:\n%s", systemConfig, got)
	}
	checkPolicies(t, true)
	signThroughProxy(t, env, dir, certPEM)

	// Purge: nothing of ours is left; the admin's policy is as it was.
	must(t, "dpkg", "-P", "csctoken")
	for f := range packageFilesOf(t, newer) {
		if _, err := os.Lstat(f); err == nil && !isSharedDir(f) {
			t.Errorf("left after dpkg -P: %s", f)
		}
	}
	for _, f := range []string{systemConfig, "/etc/csctoken", moduleFile, debModule, tbirdJSON} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("left after dpkg -P: %s", f)
		}
	}
	if got, _ := os.ReadFile(firefoxJSON); !jsonEqual(t, got, adminPolicy) {
		t.Errorf("the administrator's policy after dpkg -P:\n%s\nwant:\n%s", got, adminPolicy)
	}
	if mods := must(t, "p11-kit", "list-modules"); strings.Contains(mods, "csctoken") {
		t.Errorf("p11-kit list-modules still shows csctoken:\n%s", mods)
	}
}

// TestDebBrokenPolicy installs and purges the package with a
// policies.json that does not parse: dpkg succeeds, says why it left the
// file alone, and the file is byte for byte what it was.
func TestDebBrokenPolicy(t *testing.T) {
	gate(t, "dpkg")
	deb := dist(t, "csctoken_*_amd64.deb")
	if installed("csctoken") {
		t.Fatal("csctoken is installed on this machine already")
	}
	keepFile(t, firefoxJSON)
	keepFile(t, tbirdJSON)
	t.Cleanup(func() { purge(t, "csctoken") })
	broken := []byte("{\"policies\": {\"SecurityDevices\": {\"Add\": {\"Admin token\": \"" + adminDevice + "\"}}\n")
	writeFile(t, firefoxJSON, broken, 0o600)
	os.Remove(tbirdJSON)

	r := run(t, 3*time.Minute, nil, "", "dpkg", "-i", deb)
	if r.Err != nil {
		t.Fatalf("dpkg -i with a broken policies.json: %v", r)
	}
	if !strings.Contains(r.Stderr, firefoxJSON) || !strings.Contains(r.Stderr, "left unchanged") {
		t.Errorf("no warning about %s:\n%s", firefoxJSON, r.Stderr)
	}
	if got, _ := os.ReadFile(firefoxJSON); string(got) != string(broken) {
		t.Errorf("the broken file was changed:\n%s", got)
	}
	if st, err := os.Stat(firefoxJSON); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode of the broken file: %v %v", st.Mode(), err)
	}
	if add := securityDevices(t, tbirdJSON); add["csctoken"] != debModule {
		t.Errorf("Thunderbird's policy: %v", add)
	}
	if r := run(t, 3*time.Minute, nil, "", "dpkg", "-P", "csctoken"); r.Err != nil {
		t.Fatalf("dpkg -P: %v", r)
	}
	if got, _ := os.ReadFile(firefoxJSON); string(got) != string(broken) {
		t.Errorf("dpkg -P changed the broken file:\n%s", got)
	}
}

// checkPolicies checks that the Firefox policy holds our entry and the
// administrator's, and Thunderbird's ours.
func checkPolicies(t *testing.T, admin bool) {
	t.Helper()
	add := securityDevices(t, firefoxJSON)
	if add["csctoken"] != debModule || (admin && add["Admin token"] != adminDevice) {
		t.Errorf("%s: SecurityDevices.Add = %v", firefoxJSON, add)
	}
	if add := securityDevices(t, tbirdJSON); add["csctoken"] != debModule || len(add) != 1 {
		t.Errorf("%s: SecurityDevices.Add = %v", tbirdJSON, add)
	}
}

// signThroughProxy lists the token and signs with pkcs11-tool through
// p11-kit-proxy.so (the package's .module file is the only registration),
// and verifies the signature with openssl.
func signThroughProxy(t *testing.T, env []string, dir string, certPEM []byte) {
	t.Helper()
	r := run(t, time.Minute, env, "", "pkcs11-tool", "--module", p11kitProxy, "--list-token-slots")
	if r.Err != nil || !strings.Contains(r.Stdout, label) {
		t.Fatalf("pkcs11-tool --list-token-slots through p11-kit-proxy.so does not show %q: %v", label, r)
	}
	doc := filepath.Join(dir, "doc.txt")
	writeFile(t, doc, []byte("signed through the installed package "+time.Now().String()+"\n"), 0o644)
	sig := filepath.Join(dir, "doc.sig")
	os.Remove(sig)
	r = run(t, time.Minute, env, "", "pkcs11-tool", "--module", p11kitProxy, "--token-label", label, "--login", "--pin", pin,
		"--sign", "--label", keyLabel, "--mechanism", "SHA256-RSA-PKCS", "--input-file", doc, "--output-file", sig)
	if r.Err != nil {
		t.Fatalf("pkcs11-tool --sign: %v", r)
	}
	verify(t, dir, certPEM, doc, sig)
}

// newerBuild builds the csctoken .deb again with a higher version (the
// same binaries, from build/pkg and build/man).
func newerBuild(t *testing.T, deb string) string {
	t.Helper()
	version := must(t, "dpkg-deb", "-f", deb, "Version")
	version = strings.TrimSuffix(strings.TrimSpace(version), "-1") + ".1"
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./mkpkg", "-src", "linux", "-bin", "../build/pkg", "-man", "../build/man",
		"-out", out, "-version", version, "-packages", "csctoken", "-formats", "deb")
	cmd.Dir = filepath.Join(rootDir, "installer")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkpkg -version %s: %v\n%s", version, err, b)
	}
	return filepath.Join(out, "csctoken_"+version+"-1_amd64.deb")
}

// packageFiles is what dpkg says the installed package holds.
func packageFiles(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	for _, l := range strings.Split(must(t, "dpkg", "-L", pkg), "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "/." {
			files[l] = true
		}
	}
	return files
}

// packageFilesOf is what a .deb holds.
func packageFilesOf(t *testing.T, deb string) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	out := must(t, "sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -t", "sh", deb)
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(l), "."), "/")
		if l != "" {
			files[l] = true
		}
	}
	return files
}

// isSharedDir says whether dir is a directory other packages own too.
func isSharedDir(dir string) bool {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return false
	}
	switch dir {
	case "/etc/csctoken", "/usr/lib/x86_64-linux-gnu/pkcs11", "/usr/share/doc/csctoken":
		// Ours alone (pkcs11/ is p11-kit-modules' and opensc's as well when
		// they are installed).
		entries, _ := os.ReadDir(dir)
		return dir == "/usr/lib/x86_64-linux-gnu/pkcs11" && len(entries) > 0
	}
	return true
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	norm := func(d []byte) string {
		var v any
		if err := json.Unmarshal(d, &v); err != nil {
			return "invalid: " + string(d)
		}
		return fmt.Sprint(v)
	}
	return norm(a) == norm(b)
}

// noNetwork runs p11tool --list-tokens (GnuTLS loads every p11-kit module,
// csctoken's included, and initializes it) under strace with the shipped
// system config: the module must open no IPv4/IPv6 socket.
func noNetwork(t *testing.T, dir string) {
	t.Helper()
	testbin.Need(t, requireEnv, "strace", "p11tool")
	trace := filepath.Join(dir, "p11tool.strace")
	env := privateEnv(t, filepath.Join(dir, "nonet"))
	r := run(t, time.Minute, env, "", "strace", "-f", "-e", "trace=socket,connect", "-o", trace, "p11tool", "--list-tokens")
	if r.Err != nil {
		t.Fatalf("p11tool --list-tokens under strace: %v", r)
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "AF_INET") {
			t.Errorf("a network socket while p11-kit loaded the module without a service: %s", line)
		}
	}
	if !strings.Contains(r.Stdout, "System Trust") {
		t.Logf("p11tool --list-tokens:\n%s", r.Stdout)
	}
}

// firefoxLoads starts Firefox ESR headless on a new profile: the machine's
// policy (policies.json, SecurityDevices) must put the installed module
// into the profile's NSS database (pkcs11.txt).
func firefoxLoads(t *testing.T, dir string) {
	t.Helper()
	testbin.Need(t, requireEnv, "firefox-esr")
	home, profile := filepath.Join(dir, "ff-home"), filepath.Join(dir, "ff-profile")
	for _, d := range []string{home, profile} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "firefox-esr", "--headless", "--no-remote", "--profile", profile,
		"--screenshot", filepath.Join(dir, "ff.png"), "about:blank")
	cmd.Env = append(privateEnv(t, filepath.Join(dir, "ff")), "HOME="+home, "MOZ_CRASHREPORTER_DISABLE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what it left running
	if err != nil {
		t.Fatalf("firefox-esr --headless --screenshot: %v\n%s", err, out)
	}
	db, err := os.ReadFile(filepath.Join(profile, "pkcs11.txt"))
	if err != nil {
		t.Fatalf("Firefox made no pkcs11.txt: %v\n%s", err, out)
	}
	if !strings.Contains(string(db), "library="+debModule+"\nname=csctoken") {
		t.Errorf("Firefox did not add the module from the policy; pkcs11.txt:\n%s", db)
	}
}
