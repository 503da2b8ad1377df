package cabi

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/elf"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/testbin"
)

// testPIN is the fake credentials' PIN; distinctive, so the test can make
// sure it never reaches the module log.
const testPIN = "pin-7f3a9c2e"

var (
	workDir string // built libraries and drivers, for the whole run
	keyDir  string // the fake build's keys, shared by every process
	rootDir string // the Go module root
)

func TestMain(m *testing.M) {
	var err error
	if rootDir, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if workDir, err = os.MkdirTemp("", "cabi-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keyDir = filepath.Join(workDir, "keys")
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

// once builds something once per test run, remembering a failure.
type once struct {
	sync.Once
	path string
	err  error
}

var builds = map[string]*once{"real": {}, "fake": {}, "driver": {}}

// library builds libcsctoken.so (or the fake build) like the Makefile.
func library(t *testing.T, fake bool) string {
	t.Helper()
	need(t, "gcc", "p11-kit-1")
	name, b := "libcsctoken.so", builds["real"]
	args := []string{"build", "-trimpath", "-buildmode=c-shared"}
	if fake {
		name, b = "libcsctoken-fake.so", builds["fake"]
		args = append(args, "-tags", "csctoken_fake")
	}
	b.Do(func() {
		trackSources(t)
		b.path = filepath.Join(workDir, name)
		start := time.Now()
		cmd := exec.Command("go", append(args, "-o", b.path, "./cgo")...)
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

// trackSources reads what the library is built from, so that go test's
// result cache (which sees only files the test process opens) is
// invalidated when any of it changes.
func trackSources(t *testing.T) {
	for _, dir := range []string{"cgo", "module", "cscclient", "csc", filepath.Join("tests", "cabi", "testdata")} {
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

// pkgConfigCFlags returns `pkg-config --cflags p11-kit-1`.
func pkgConfigCFlags(t *testing.T) []string {
	out, err := exec.Command("pkg-config", "--cflags", "p11-kit-1").Output()
	if err != nil {
		t.Fatalf("pkg-config --cflags p11-kit-1: %v", err)
	}
	return strings.Fields(string(out))
}

// cflags are the warnings every C file of ours must compile without.
var cflags = []string{"-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"}

// driver compiles testdata/driver.c.
func driver(t *testing.T) string {
	t.Helper()
	need(t, "gcc", "p11-kit-1")
	b := builds["driver"]
	b.Do(func() {
		b.path = filepath.Join(workDir, "driver")
		args := append(slices.Clone(cflags), "-O1", "-g")
		args = append(args, pkgConfigCFlags(t)...)
		args = append(args, "-I", filepath.Join(rootDir, "cgo"), filepath.Join("testdata", "driver.c"),
			"-o", b.path, "-ldl", "-lpthread")
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// env is the environment of one C host: a private HOME, cache and config,
// the shared fake keys, the test PIN and a module log.
type env struct {
	dir  string
	vars []string
}

func newEnv(t *testing.T, config string, extra ...string) *env {
	t.Helper()
	e := &env{dir: t.TempDir()}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CSCTOKEN_") || strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		e.vars = append(e.vars, kv)
	}
	e.vars = append(e.vars,
		"HOME="+filepath.Join(e.dir, "home"),
		"XDG_CACHE_HOME="+filepath.Join(e.dir, "cache"),
		"XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"),
		"CSCTOKEN_FAKE_KEYDIR="+keyDir,
		"CSCTOKEN_FAKE_PIN="+testPIN,
		"CSCTOKEN_LOG="+e.log(),
	)
	if config != "" {
		path := filepath.Join(e.dir, "csctoken.toml")
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		e.vars = append(e.vars, "CSCTOKEN_CONFIG="+path)
	}
	e.vars = append(e.vars, extra...)
	return e
}

func (e *env) log() string { return filepath.Join(e.dir, "log", "module.log") }

// run runs a C host and returns its stdout and stderr.
func (e *env) run(t *testing.T, timeout time.Duration, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.vars
	cmd.Dir = e.dir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v (hung?): %w", timeout, err)
	}
	shown := strings.NewReplacer(e.dir, "$TMP", workDir, "$WORK").Replace(strings.Join(args, " "))
	t.Logf("%s %s: %v", filepath.Base(name), shown, time.Since(start).Round(time.Millisecond))
	return stdout.String(), stderr.String(), err
}

// mustRun runs a C host and fails the test unless it exits 0.
func (e *env) mustRun(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	stdout, stderr, err := e.run(t, timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), err, stdout, stderr)
	}
	if testing.Verbose() && stderr != "" {
		t.Logf("stderr:\n%s", stderr)
	}
	return stdout
}

const twoServices = `
[[service]]
name = "Alpha"
url = "https://alpha.example/csc/v2"
auth = "basic"
username = "alice"

[[service]]
name = "Beta"
url = "https://beta.example/csc/v2"
auth = "basic"
username = "bob"
`

// ---- the library file --------------------------------------------------------

// cFunctions are the PKCS#11 2.40 and 3.0 functions: exactly the exports.
var cFunctions = strings.Fields(`
C_Initialize C_Finalize C_GetInfo C_GetFunctionList C_GetSlotList C_GetSlotInfo C_GetTokenInfo
C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN C_OpenSession C_CloseSession
C_CloseAllSessions C_GetSessionInfo C_GetOperationState C_SetOperationState C_Login C_Logout
C_CreateObject C_CopyObject C_DestroyObject C_GetObjectSize C_GetAttributeValue C_SetAttributeValue
C_FindObjectsInit C_FindObjects C_FindObjectsFinal C_EncryptInit C_Encrypt C_EncryptUpdate
C_EncryptFinal C_DecryptInit C_Decrypt C_DecryptUpdate C_DecryptFinal C_DigestInit C_Digest
C_DigestUpdate C_DigestKey C_DigestFinal C_SignInit C_Sign C_SignUpdate C_SignFinal C_SignRecoverInit
C_SignRecover C_VerifyInit C_Verify C_VerifyUpdate C_VerifyFinal C_VerifyRecoverInit C_VerifyRecover
C_DigestEncryptUpdate C_DecryptDigestUpdate C_SignEncryptUpdate C_DecryptVerifyUpdate C_GenerateKey
C_GenerateKeyPair C_WrapKey C_UnwrapKey C_DeriveKey C_SeedRandom C_GenerateRandom C_GetFunctionStatus
C_CancelFunction C_WaitForSlotEvent
C_GetInterfaceList C_GetInterface C_LoginUser C_SessionCancel C_MessageEncryptInit C_EncryptMessage
C_EncryptMessageBegin C_EncryptMessageNext C_MessageEncryptFinal C_MessageDecryptInit C_DecryptMessage
C_DecryptMessageBegin C_DecryptMessageNext C_MessageDecryptFinal C_MessageSignInit C_SignMessage
C_SignMessageBegin C_SignMessageNext C_MessageSignFinal C_MessageVerifyInit C_VerifyMessage
C_VerifyMessageBegin C_VerifyMessageNext C_MessageVerifyFinal`)

// TestLibraryFile reads both builds as ELF files (never loading them): the
// dynamic symbol table defines exactly the C_* functions, the library
// needs only libc, is NODELETE and of a sane size; ldd agrees.
func TestLibraryFile(t *testing.T) {
	for _, fake := range []bool{false, true} {
		path := library(t, fake)
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			syms, err := f.DynamicSymbols()
			if err != nil {
				t.Fatal(err)
			}
			var exported []string
			for _, s := range syms {
				bind := elf.ST_BIND(s.Info)
				if s.Section == elf.SHN_UNDEF || s.Name == "" || (bind != elf.STB_GLOBAL && bind != elf.STB_WEAK) {
					continue
				}
				if !strings.HasPrefix(s.Name, "C_") {
					t.Errorf("exported symbol %q is not a PKCS#11 function", s.Name)
				}
				exported = append(exported, s.Name)
			}
			slices.Sort(exported)
			want := slices.Sorted(slices.Values(cFunctions))
			if !slices.Equal(exported, want) {
				t.Errorf("exports differ from the PKCS#11 2.40+3.0 functions:\n got %d: %v\nwant %d: %v",
					len(exported), exported, len(want), want)
			}

			libs, err := f.ImportedLibraries()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range libs {
				switch l {
				case "libc.so.6", "libpthread.so.0", "libdl.so.2", "libm.so.6":
				default:
					t.Errorf("needs %s; only libc should be needed", l)
				}
			}
			flags, err := f.DynValue(elf.DT_FLAGS_1)
			if err != nil || len(flags) == 0 || elf.DynFlag1(flags[0])&elf.DF_1_NODELETE == 0 {
				t.Errorf("not marked NODELETE (a Go library cannot be unloaded): %v %v", flags, err)
			}

			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.1f MiB, %d exports, needs %v", filepath.Base(path), float64(st.Size())/(1<<20), len(exported), libs)
			if st.Size() > 32<<20 {
				t.Errorf("%d bytes: unexpectedly large", st.Size())
			}

			if _, err := exec.LookPath("ldd"); err == nil {
				out, err := exec.Command("ldd", path).CombinedOutput()
				if err != nil || strings.Contains(string(out), "not found") {
					t.Errorf("ldd %s: %v\n%s", path, err, out)
				}
			}
		})
	}
}

// TestCWarnings compiles pkcs11.c alone with -Wall -Wextra -Werror
// -Wpedantic, against the export header the c-shared build wrote.
func TestCWarnings(t *testing.T) {
	lib := library(t, false)
	inc := t.TempDir()
	hdr, err := os.ReadFile(strings.TrimSuffix(lib, ".so") + ".h")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inc, "_cgo_export.h"), hdr, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(slices.Clone(cflags), "-Wpedantic", "-fsyntax-only", "-I", inc, "-I", filepath.Join(rootDir, "cgo"))
	args = append(args, pkgConfigCFlags(t)...)
	args = append(args, filepath.Join(rootDir, "cgo", "pkcs11.c"))
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ---- C drivers -------------------------------------------------------------

// TestABI runs the table of ABI rules (testdata/driver.c, cmd_abi) on two
// fake slots, then checks every signature it printed with Go's crypto and
// the certificate it read from the token, and that the module log was
// written privately and without the PIN.
func TestABI(t *testing.T) {
	lib, drv := library(t, true), driver(t)
	e := newEnv(t, twoServices)
	out := e.mustRun(t, time.Minute, drv, lib, "abi")

	certs := map[string]*x509.Certificate{}
	type sig struct{ mech, label, input, sig string }
	var sigs []sig
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 4 && f[0] == "CERT":
			der, err := hex.DecodeString(f[3])
			if err != nil {
				t.Fatal(err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatalf("certificate %s %s: %v", f[1], f[2], err)
			}
			certs[f[1]+" "+f[2]] = c
		case len(f) == 6 && f[0] == "SIG":
			sigs = append(sigs, sig{f[1], f[2] + " " + f[3], f[4], f[5]})
		}
	}
	if len(sigs) < 7 || len(certs) != 2 {
		t.Fatalf("%d signatures and %d certificates in the output:\n%s", len(sigs), len(certs), out)
	}
	for _, s := range sigs {
		c := certs[s.label]
		if c == nil {
			t.Errorf("no certificate for %s", s.label)
			continue
		}
		input, _ := hex.DecodeString(s.input)
		raw, _ := hex.DecodeString(s.sig)
		if err := verify(c, s.mech, input, raw); err != nil {
			t.Errorf("%s with %s: %v", s.mech, s.label, err)
		}
	}

	st, err := os.Stat(e.log())
	if err != nil {
		t.Fatalf("module log: %v", err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() == 0 {
		t.Errorf("module log: mode %v, %d bytes", st.Mode().Perm(), st.Size())
	}
	if log, _ := os.ReadFile(e.log()); bytes.Contains(log, []byte(testPIN)) {
		t.Errorf("the PIN is in the module log")
	}
}

// verify checks a PKCS#11-format signature with the certificate's key.
func verify(c *x509.Certificate, mech string, input, sig []byte) error {
	digest := func() []byte { d := sha256.Sum256(input); return d[:] }
	pss := &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}
	switch mech {
	case "CKM_SHA256_RSA_PKCS":
		return rsa.VerifyPKCS1v15(c.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest(), sig)
	case "CKM_RSA_PKCS_PSS":
		return rsa.VerifyPSS(c.PublicKey.(*rsa.PublicKey), crypto.SHA256, input, sig, pss)
	case "CKM_SHA256_RSA_PKCS_PSS":
		return rsa.VerifyPSS(c.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest(), sig, pss)
	case "CKM_ECDSA", "CKM_ECDSA_SHA256":
		h := input
		if mech == "CKM_ECDSA_SHA256" {
			h = digest()
		}
		if len(sig) != 64 {
			return fmt.Errorf("r||s of %d bytes, want 64", len(sig))
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(c.PublicKey.(*ecdsa.PublicKey), h, r, s) {
			return errors.New("ECDSA verification failed")
		}
		return nil
	}
	return fmt.Errorf("unknown mechanism %s", mech)
}

// TestOperationLifecycleCABI: the rules of the operation lifecycle
// (PKCS#11 2.40 §5.2, §5.10-5.12; 3.0's *Init with a NULL mechanism) that
// the C side takes part in, one driver run per rule. Each case in
// driver.c ends by checking that the operation is over.
func TestOperationLifecycleCABI(t *testing.T) {
	lib, drv := library(t, true), driver(t)
	tests := []struct{ name, rule string }{
		{"digest-null-length", "C_Digest with pulDigestLen NULL: CKR_ARGUMENTS_BAD, the digest ends"},
		{"digest-null-data", "C_Digest with pData NULL and a length: CKR_ARGUMENTS_BAD, the digest ends"},
		{"digestfinal-null-length", "C_DigestFinal with pulDigestLen NULL ends the digest"},
		{"sign-null-length", "C_Sign with pulSignatureLen NULL ends the signature"},
		{"sign-null-data", "C_Sign with pData NULL and a length ends the signature"},
		{"signfinal-null-length", "C_SignFinal with pulSignatureLen NULL ends the signature"},
		{"verify-null-signature", "C_Verify with pSignature NULL and a length ends the verification"},
		{"verifyfinal-null-signature", "C_VerifyFinal with pSignature NULL and a length ends the verification"},
		{"digest-after-update", "C_Digest after C_DigestUpdate: CKR_OPERATION_ACTIVE, then over"},
		{"sign-after-update", "C_Sign after C_SignUpdate: CKR_OPERATION_ACTIVE, then over"},
		{"verify-after-update", "C_Verify after C_VerifyUpdate: CKR_OPERATION_ACTIVE, then over"},
		{"digestfinal-after-length-query", "C_DigestFinal after a C_Digest length query fails, then over"},
		{"signfinal-after-length-query", "C_SignFinal after a C_Sign length query fails, then over"},
		{"init-null-mechanism", "C_DigestInit/C_SignInit/C_VerifyInit(NULL) end the active operation"},
		{"length-query-keeps", "a length query and CKR_BUFFER_TOO_SMALL keep the operation"},
		{"login-so", "C_Login(CKU_SO): READ_ONLY_EXISTS, USER_ANOTHER_ALREADY_LOGGED_IN, then PIN_LOCKED"},
		{"mechanism-flags", "remote signature mechanisms carry CKF_HW, local digests do not"},
		{"pss-params", "PSS with an MGF1 hash unlike the hash, or salt 0: CKR_MECHANISM_PARAM_INVALID at C_SignInit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, twoServices)
			if _, stderr, err := e.run(t, time.Minute, drv, lib, "lifecycle", tt.name); err != nil {
				t.Errorf("%s: %v\n%s", tt.rule, err, stderr)
			}
		})
	}
}

// TestFork: a forked child never enters the parent's Go runtime; it gets
// CKR_CRYPTOKI_NOT_INITIALIZED, then an empty C-only module after its own
// C_Initialize, exits quickly, and the parent keeps signing.
func TestFork(t *testing.T) {
	lib, drv := library(t, true), driver(t)
	newEnv(t, twoServices).mustRun(t, time.Minute, drv, lib, "fork")
}

// TestThreads: 8 threads sign in parallel on two slots (RSA and ECDSA)
// while another polls slot and token information.
func TestThreads(t *testing.T) {
	lib, drv := library(t, true), driver(t)
	newEnv(t, twoServices).mustRun(t, time.Minute, drv, lib, "threads")
}

// TestFinalizeWhileSigning: with the fake service's signHash hanging,
// C_CloseSession and C_Finalize from another thread return at once and
// the pending C_Sign comes back cancelled.
func TestFinalizeWhileSigning(t *testing.T) {
	lib, drv := library(t, true), driver(t)
	newEnv(t, twoServices, "CSCTOKEN_FAKE_SIGN_DELAY=1h").mustRun(t, time.Minute, drv, lib, "finalize-while-signing")
}

// TestAtExit: C_CloseSession and C_Finalize from an atexit handler, also
// while another thread is inside C_Sign waiting on the service.
func TestAtExit(t *testing.T) {
	lib, drv := library(t, true), driver(t)
	for _, mode := range []string{"idle", "busy"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, twoServices, "CSCTOKEN_FAKE_SIGN_DELAY=1h")
			out := e.mustRun(t, time.Minute, drv, lib, "atexit", mode)
			want := "atexit: C_CloseSession=CKR_OK C_Finalize=CKR_OK C_GetInfo=CKR_CRYPTOKI_NOT_INITIALIZED"
			if !strings.Contains(out, want) {
				t.Errorf("output %q, want %q", out, want)
			}
		})
	}
}

// TestRealBuild: the shipped build has the C ABI and the slots of the
// config; without a stored service login, C_Login answers
// CKR_USER_NOT_LOGGED_IN (the end-to-end tests in tests/e2e log in).
func TestRealBuild(t *testing.T) {
	lib, drv := library(t, false), driver(t)
	newEnv(t, `
[[service]]
name = "Real"
url = "https://real.example/csc/v2"
auth = "basic"
username = "carol"
`).mustRun(t, time.Minute, drv, lib, "real")
}

// ---- pkcs11-tool -------------------------------------------------------------

// TestPkcs11Tool drives the fake build with OpenSC's pkcs11-tool and checks
// the signatures with openssl against the certificates read from the token.
func TestPkcs11Tool(t *testing.T) {
	need(t, "pkcs11-tool", "openssl")
	lib := library(t, true)
	tool := func(t *testing.T, e *env, args ...string) string {
		t.Helper()
		return e.mustRun(t, time.Minute, "pkcs11-tool", append([]string{"--module", lib}, args...)...)
	}

	t.Run("list-slots", func(t *testing.T) {
		out := tool(t, newEnv(t, ""), "--list-slots")
		for _, want := range []string{"token label        : csctoken fake", "login required", "token initialized", "readonly"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	})

	t.Run("list-objects", func(t *testing.T) {
		e := newEnv(t, "")
		out := tool(t, e, "--list-objects")
		for _, want := range []string{"CKP_PUBLIC_CERTIFICATES_TOKEN", "label:      Key rsa2048", "label:      Key p256", "RSA 2048 bits"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
		if strings.Contains(out, "Private Key Object") {
			t.Errorf("private keys listed before login:\n%s", out)
		}
		out = tool(t, e, "--list-objects", "--login", "--pin", testPIN)
		if n := strings.Count(out, "Private Key Object"); n != 2 {
			t.Errorf("%d private keys after login:\n%s", n, out)
		}
	})

	t.Run("sign", func(t *testing.T) {
		e := newEnv(t, "")
		data := []byte("signed through pkcs11-tool")
		hash := sha256.Sum256(data)
		write := func(name string, b []byte) string {
			p := filepath.Join(e.dir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		dataFile, hashFile := write("data", data), write("data.sha256", hash[:])

		// The certificates, read from the token; CKA_ID is the SHA-1 of
		// the subject public key.
		ids, pubs := map[string]string{}, map[string]string{}
		for _, label := range []string{"Key rsa2048", "Key p256"} {
			der := filepath.Join(e.dir, label+".der")
			tool(t, e, "--read-object", "--type", "cert", "--label", label, "--output-file", der)
			raw, err := os.ReadFile(der)
			if err != nil {
				t.Fatal(err)
			}
			c, err := x509.ParseCertificate(raw)
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			var spki struct {
				Alg pkix.AlgorithmIdentifier
				Key asn1.BitString
			}
			if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
				t.Fatal(err)
			}
			sum := sha1.Sum(spki.Key.Bytes)
			ids[label] = hex.EncodeToString(sum[:])
			pubs[label] = filepath.Join(e.dir, label+".pub")
			e.mustRun(t, time.Minute, "openssl", "x509", "-inform", "DER", "-in", der, "-pubkey", "-noout", "-out", pubs[label])
		}

		pssOpts := []string{"rsa_padding_mode:pss", "rsa_pss_saltlen:32"}
		for _, tc := range []struct {
			mech, label, in string
			extra           []string
			verify          func(sig, pub string) []string
		}{
			{"SHA256-RSA-PKCS", "Key rsa2048", dataFile, nil, func(sig, pub string) []string {
				return []string{"dgst", "-sha256", "-verify", pub, "-signature", sig, dataFile}
			}},
			{"RSA-PKCS-PSS", "Key rsa2048", hashFile, []string{"--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256", "--salt-len", "32"}, func(sig, pub string) []string {
				return []string{"pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", hashFile, "-sigfile", sig,
					"-pkeyopt", pssOpts[0], "-pkeyopt", pssOpts[1], "-pkeyopt", "digest:sha256"}
			}},
			// pkcs11-tool derives the parameters: SHA-256, MGF1-SHA256, 32-byte salt.
			{"SHA256-RSA-PKCS-PSS", "Key rsa2048", dataFile, nil, func(sig, pub string) []string {
				return []string{"dgst", "-sha256", "-sigopt", pssOpts[0], "-sigopt", pssOpts[1], "-verify", pub, "-signature", sig, dataFile}
			}},
			{"ECDSA", "Key p256", hashFile, []string{"--signature-format", "openssl"}, func(sig, pub string) []string {
				return []string{"pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", hashFile, "-sigfile", sig}
			}},
			{"ECDSA-SHA256", "Key p256", dataFile, []string{"--signature-format", "openssl"}, func(sig, pub string) []string {
				return []string{"dgst", "-sha256", "-verify", pub, "-signature", sig, dataFile}
			}},
		} {
			t.Run(tc.mech, func(t *testing.T) {
				sig := filepath.Join(e.dir, tc.mech+".sig")
				args := append([]string{"--login", "--pin", testPIN, "--sign", "--mechanism", tc.mech,
					"--id", ids[tc.label], "--input-file", tc.in, "--output-file", sig}, tc.extra...)
				tool(t, e, args...)
				out := e.mustRun(t, time.Minute, "openssl", tc.verify(sig, pubs[tc.label])...)
				if !strings.Contains(out, "Verified") {
					t.Errorf("openssl: %s", out)
				}
			})
		}
		// The raw ECDSA signature is r||s, 64 bytes for P-256.
		sig := filepath.Join(e.dir, "ecdsa.rs")
		tool(t, e, "--login", "--pin", testPIN, "--sign", "--mechanism", "ECDSA", "--id", ids["Key p256"],
			"--input-file", hashFile, "--output-file", sig)
		if st, err := os.Stat(sig); err != nil || st.Size() != 64 {
			t.Errorf("raw ECDSA signature: %v, %v", st, err)
		}
	})

	t.Run("test", func(t *testing.T) {
		// pkcs11-tool --test signs SHA-1 DigestInfos with CKM_RSA_PKCS, so
		// the fake offers SHA-1 here (our rssp does not: tests/e2e). No
		// --allow-sw: the signing mechanisms claim CKF_HW, so the
		// signature section runs as testers run it, and ends with 0 errors.
		e := newEnv(t, "", "CSCTOKEN_FAKE_SHA1=1")
		out := tool(t, e, "--test", "--login", "--pin", testPIN)
		for _, want := range []string{"all 4 signature functions seem to work", "SHA256-RSA-PKCS: OK", "No errors"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	})

	t.Run("test-threads", func(t *testing.T) {
		// Three threads each C_Initialize with CKF_OS_LOCKING_OK (one
		// wins, the others get CKR_CRYPTOKI_ALREADY_INITIALIZED) and read
		// the info, slot list and token info, while the main thread logs
		// in and runs --test. (pkcs11-tool sleeps 30 s at the end if a
		// thread is still running then, so the threads do little.)
		e := newEnv(t, "", "CSCTOKEN_FAKE_SHA1=1")
		stdout, stderr, err := e.run(t, time.Minute, "pkcs11-tool", "--module", lib,
			"--test-threads", "ILGISLT0", "--test-threads", "ILGISL", "--test-threads", "ILSLGI",
			"--login", "--pin", testPIN, "--test")
		if err != nil || !strings.Contains(stderr, "all threads have ended with CKR_OK") || !strings.Contains(stdout, "No errors") {
			t.Errorf("pkcs11-tool --test-threads: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		}
	})

	t.Run("test-fork", func(t *testing.T) {
		e := newEnv(t, "")
		start := time.Now()
		out := e.mustRun(t, 30*time.Second, "pkcs11-tool", "--module", lib, "--test-fork")
		if !strings.Contains(out, "C_Initialize in forked child") {
			t.Errorf("output: %s", out)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("--test-fork took %v", d)
		}
	})
}

// TestP11KitServer checks the way documented for hosts that fork: the
// module served out of process by `p11-kit server`, used through
// p11-kit-client.so, where --test-fork and signing work as in process.
func TestP11KitServer(t *testing.T) {
	need(t, "p11-kit", "pkcs11-tool", "openssl", "p11-kit-1")
	lib := library(t, true)
	out, err := exec.Command("pkg-config", "--variable=p11_module_path", "p11-kit-1").Output()
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(strings.TrimSpace(string(out)), "p11-kit-client.so")
	if _, err := os.Stat(client); err != nil {
		if os.Getenv("CSCTOKEN_REQUIRE_TOOLS") == "1" {
			t.Fatal(err)
		}
		t.Skipf("no p11-kit-client.so: %v", err)
	}
	e := newEnv(t, "")
	sock := filepath.Join(e.dir, "p11-kit.sock")
	srv := exec.Command("p11-kit", "server", "--foreground", "--name", sock, "--provider", lib, "pkcs11:")
	srv.Env = e.vars
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("p11-kit server made no socket:\n%s", srvOut.String())
		}
	}
	e.vars = append(e.vars, "P11_KIT_SERVER_ADDRESS=unix:path="+sock)

	listing := e.mustRun(t, time.Minute, "pkcs11-tool", "--module", client, "--list-slots")
	if !strings.Contains(listing, "csctoken fake") {
		t.Errorf("the token is not listed through p11-kit-client.so:\n%s", listing)
	}
	data := filepath.Join(e.dir, "data")
	if err := os.WriteFile(data, []byte("out of process"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, pub, sig := filepath.Join(e.dir, "cert.der"), filepath.Join(e.dir, "pub.pem"), filepath.Join(e.dir, "sig")
	e.mustRun(t, time.Minute, "pkcs11-tool", "--module", client, "--read-object", "--type", "cert",
		"--label", "Key rsa2048", "--output-file", cert)
	e.mustRun(t, time.Minute, "openssl", "x509", "-inform", "DER", "-in", cert, "-pubkey", "-noout", "-out", pub)
	// The RSA key is the first private key.
	e.mustRun(t, time.Minute, "pkcs11-tool", "--module", client, "--login", "--pin", testPIN, "--sign",
		"--mechanism", "SHA256-RSA-PKCS", "--input-file", data, "--output-file", sig)
	e.mustRun(t, time.Minute, "openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig, data)
	e.mustRun(t, 30*time.Second, "pkcs11-tool", "--module", client, "--test-fork")
}
