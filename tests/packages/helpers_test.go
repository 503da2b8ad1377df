package packages

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/testbin"
)

const requireEnv = "CSCTOKEN_REQUIRE_PACKAGES"

var rootDir string // the Go module root

func TestMain(m *testing.M) {
	var err error
	if rootDir, _, err = testbin.Dirs(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// gate skips the test outside make package-test, and without root or a
// tool (a failure under CSCTOKEN_REQUIRE_PACKAGES=1).
func gate(t *testing.T, tools ...string) {
	t.Helper()
	if os.Getenv("CSCTOKEN_PACKAGE_TESTS") != "1" {
		t.Skip("installs packages system-wide: run by make package-test (CSCTOKEN_PACKAGE_TESTS=1)")
	}
	if os.Geteuid() != 0 {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("the package tests need root (%s=1)", requireEnv)
		}
		t.Skip("the package tests need root")
	}
	testbin.Need(t, requireEnv, tools...)
}

// dist returns the one package of make packages that matches pattern in
// build/dist.
func dist(t *testing.T, pattern string) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(rootDir, "build", "dist", pattern))
	if len(matches) != 1 {
		t.Fatalf("build/dist/%s: want one package from make packages, found %v", pattern, matches)
	}
	return matches[0]
}

// run runs a program to its end (at most limit) with the environment env
// (nil: the test's) and returns its output; stdin may be "".
func run(t *testing.T, limit time.Duration, env []string, stdin, name string, args ...string) testbin.Result {
	t.Helper()
	if env == nil {
		env = os.Environ()
	}
	return testbin.Run(testbin.Cmd{Name: name, Args: args, Env: env, Stdin: stdin, Limit: limit})
}

// must runs a program that has to succeed and returns its stdout.
func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	r := run(t, 3*time.Minute, nil, "", name, args...)
	if r.Err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), r)
	}
	return r.Stdout
}

// installed says whether dpkg knows pkg as installed (or half-installed).
func installed(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", pkg).Output()
	return err == nil && len(out) > 0 && string(out) != "not-installed" && string(out) != "config-files"
}

// purge removes pkg with its configuration files, whatever state it is in.
func purge(t *testing.T, pkg string) {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", pkg).Output()
	if err != nil || string(out) == "not-installed" {
		return
	}
	if r := run(t, 3*time.Minute, nil, "", "dpkg", "--purge", pkg); r.Err != nil {
		t.Errorf("dpkg --purge %s: %v", pkg, r)
	}
}

// keepFile saves file (or its absence) and puts it back at cleanup.
func keepFile(t *testing.T, file string) {
	t.Helper()
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	existed := err == nil
	var mode fs.FileMode = 0o644
	if st, err := os.Stat(file); err == nil {
		mode = st.Mode().Perm()
	}
	// The directories the test may make, from the top: removed again when
	// they did not exist and are empty.
	var made []string
	for d := filepath.Dir(file); d != "/" && d != "/etc"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			made = append(made, d)
		}
	}
	t.Cleanup(func() {
		if !existed {
			os.Remove(file)
			for _, d := range made {
				os.Remove(d)
			}
			return
		}
		os.MkdirAll(filepath.Dir(file), 0o755)
		if err := os.WriteFile(file, old, mode); err != nil {
			t.Errorf("restoring %s: %v", file, err)
		}
	})
}

// writeFile writes data into file, making its directory.
func writeFile(t *testing.T, file string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, mode); err != nil {
		t.Fatal(err)
	}
}

// securityDevices returns policies.SecurityDevices.Add of a policies.json.
func securityDevices(t *testing.T, file string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies struct {
			SecurityDevices struct {
				Add map[string]string
			}
		} `json:"policies"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v\n%s", file, err, data)
	}
	return doc.Policies.SecurityDevices.Add
}

// stripped fails unless file is an ELF object without a symbol table or
// debugging sections.
func stripped(t *testing.T, file string) {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("%s is not stripped: it has %s", file, s.Name)
		}
	}
}

// firstCert returns the first PEM certificate block of text.
func firstCert(t *testing.T, text string) []byte {
	t.Helper()
	const begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
	i := strings.Index(text, begin)
	j := strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("no certificate in:\n%s", text)
	}
	return []byte(text[i:j+len(end)] + "\n")
}

// privateEnv is the environment of a user of the machine whose home is dir:
// no personal csctoken config (the system's applies), the token store in a
// file (no session bus), no p11-kit or csctoken variables of the test's.
func privateEnv(t *testing.T, dir string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CSCTOKEN_") || strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "HOME=") ||
			strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") || strings.HasPrefix(kv, "P11_KIT_") {
			continue
		}
		env = append(env, kv)
	}
	for _, d := range []string{"home", "config", "cache", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return append(env,
		"HOME="+filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"XDG_RUNTIME_DIR="+filepath.Join(dir, "run"),
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(dir, "no-bus"),
	)
}

// verify checks a signature of doc with the certificate's public key
// (openssl).
func verify(t *testing.T, dir string, certPEM []byte, doc, sig string) {
	t.Helper()
	cert := filepath.Join(dir, "verify-cert.pem")
	writeFile(t, cert, certPEM, 0o644)
	pub := must(t, "openssl", "x509", "-in", cert, "-pubkey", "-noout")
	pubFile := filepath.Join(dir, "verify-pub.pem")
	writeFile(t, pubFile, []byte(pub), 0o644)
	out := must(t, "openssl", "dgst", "-sha256", "-verify", pubFile, "-signature", sig, doc)
	if !bytes.Contains([]byte(out), []byte("Verified OK")) {
		t.Fatalf("openssl: %s", out)
	}
}
