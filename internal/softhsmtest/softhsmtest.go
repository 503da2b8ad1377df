// Package softhsmtest gives tests a fresh SoftHSM2 token of their own.
//
// New writes a temporary softhsm2.conf whose token directory lives in
// t.TempDir(), points SOFTHSM2_CONF at it for the test process (t.Setenv,
// so the calling test and its ancestors must not use t.Parallel), and
// initialises one token with softhsm2-util. Subprocesses (the rssp binary,
// pkcs11-tool, a consumer loading our module) need Token.Env or ConfPath,
// since the SoftHSM library reads SOFTHSM2_CONF when it is initialised.
//
// When SoftHSM2 is not installed the test is skipped, unless
// CSCTOKEN_REQUIRE_SOFTHSM=1 (set in CI), in which case it fails.
//
// Environment:
//
//	SOFTHSM2_LIB               path of libsofthsm2.so (default: search well-known places)
//	SOFTHSM2_UTIL              path of softhsm2-util (default: $PATH)
//	CSCTOKEN_REQUIRE_SOFTHSM=1 fail instead of skipping when SoftHSM2 is missing
//
// Usage:
//
//	tok := softhsmtest.New(t)
//	b, err := p11.Open(ctx, p11.Config{Module: tok.ModulePath, TokenLabel: tok.Label, PIN: tok.PIN})
package softhsmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Defaults for the token New creates.
const (
	DefaultLabel = "csctoken-test"
	DefaultPIN   = "123456"
	DefaultSOPIN = "12345678"
)

// Environment variables read by New.
const (
	EnvLib     = "SOFTHSM2_LIB"
	EnvUtil    = "SOFTHSM2_UTIL"
	EnvConf    = "SOFTHSM2_CONF"
	EnvRequire = "CSCTOKEN_REQUIRE_SOFTHSM"
)

// LibraryPaths are searched, in order, for libsofthsm2.so when SOFTHSM2_LIB
// is not set.
var LibraryPaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",                   // Debian, Ubuntu
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",  // Debian multiarch
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", // Debian multiarch
	"/usr/lib64/pkcs11/libsofthsm2.so",                  // Fedora, RHEL
	"/usr/lib64/softhsm/libsofthsm2.so",                 // openSUSE
	"/usr/lib/pkcs11/libsofthsm2.so",                    // Arch
	"/usr/local/lib/softhsm/libsofthsm2.so",             // source builds, FreeBSD
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",          // macOS, Apple silicon
	"/usr/local/opt/softhsm/lib/softhsm/libsofthsm2.so", // macOS, Intel
}

// errBadOverride marks an explicit SOFTHSM2_LIB that does not exist.
var errBadOverride = errors.New("bad override")

// Token is an initialised SoftHSM2 token, private to one test.
type Token struct {
	ModulePath string // libsofthsm2.so
	ConfPath   string // the softhsm2.conf this token lives under
	TokenDir   string // its directories.tokendir
	Label      string
	PIN        string // user PIN
	SOPIN      string // security officer PIN
}

// Env returns the environment entry subprocesses need to see the token,
// e.g. cmd.Env = append(os.Environ(), tok.Env()...).
func (tok *Token) Env() []string {
	return []string{EnvConf + "=" + tok.ConfPath}
}

// New creates a token labelled DefaultLabel with DefaultPIN and
// DefaultSOPIN in a new temporary SoftHSM2 configuration, and sets
// SOFTHSM2_CONF for the rest of the test. It skips (or fails, see the
// package doc) when SoftHSM2 is not installed.
func New(t testing.TB) *Token {
	t.Helper()
	lib, util, err := Find()
	if err != nil {
		unavailable(t, err)
	}

	dir := t.TempDir()
	tokenDir := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokenDir, 0o700); err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	content := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokenDir)
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	t.Setenv(EnvConf, conf)

	tok := &Token{ModulePath: lib, ConfPath: conf, TokenDir: tokenDir, Label: DefaultLabel, PIN: DefaultPIN, SOPIN: DefaultSOPIN}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, util, "--init-token", "--free",
		"--label", tok.Label, "--so-pin", tok.SOPIN, "--pin", tok.PIN)
	cmd.Env = append(os.Environ(), tok.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsmtest: %s --init-token: %v\n%s", util, err, out)
	}
	return tok
}

// Find locates libsofthsm2.so and softhsm2-util, honouring SOFTHSM2_LIB and
// SOFTHSM2_UTIL.
func Find() (lib, util string, err error) {
	if p := os.Getenv(EnvLib); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("%w: %s=%s: %w", errBadOverride, EnvLib, p, err)
		}
		lib = p
	} else {
		for _, p := range LibraryPaths {
			if _, err := os.Stat(p); err == nil {
				lib = p
				break
			}
		}
		if lib == "" {
			return "", "", fmt.Errorf("libsofthsm2.so not found (looked in %s; set %s)", strings.Join(LibraryPaths, ", "), EnvLib)
		}
	}
	util = os.Getenv(EnvUtil)
	if util == "" {
		util = "softhsm2-util"
	}
	if util, err = exec.LookPath(util); err != nil {
		return "", "", fmt.Errorf("softhsm2-util not found (install softhsm2 or set %s): %w", EnvUtil, err)
	}
	return lib, util, nil
}

// unavailable skips the test, or fails it when CI requires SoftHSM2.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("softhsmtest: SoftHSM2 is required (%s=1) but unavailable: %v", EnvRequire, err)
	}
	if errors.Is(err, errBadOverride) {
		// An explicit override that points nowhere is a mistake, not a missing install.
		t.Fatalf("softhsmtest: %v", err)
	}
	t.Skipf("softhsmtest: SoftHSM2 not installed, test skipped (apt install softhsm2; %s=1 makes this fatal): %v", EnvRequire, err)
}
