package programs

import (
	"strings"
	"testing"
	"time"
)

// TestP11tool drives GnuTLS's p11tool with --provider: it lists the token,
// its objects and certificates, and test-signs with each key (p11tool
// signs and verifies with the certificate's public key itself, and says
// so).
func TestP11tool(t *testing.T) {
	need(t, "p11tool")
	f := newFixture(t)
	p11tool := func(t *testing.T, args ...string) string {
		t.Helper()
		return f.mustRun(t, "p11tool", append([]string{"--provider", f.lib}, args...)...)
	}
	// GnuTLS initializes modules through p11-kit with
	// CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK (flags 3, as
	// pkcs11-spy shows), with --provider and through the registry alike;
	// a module answering CKR_NEED_TO_CREATE_THREADS is unusable in every
	// GnuTLS program ("pkcs11_add_provider: Thread locking error").
	if r := f.run(t, time.Minute, "", "p11tool", "--provider", f.lib, "--list-tokens"); strings.Contains(r.Stderr, "Thread locking error") {
		t.Fatalf("GnuTLS cannot initialize the module: C_Initialize refuses CKF_LIBRARY_CANT_CREATE_OS_THREADS, which GnuTLS always sets: %v", r)
	}
	tokens := p11tool(t, "--list-tokens")
	if !strings.Contains(tokens, "Label: "+tokenLabel) {
		t.Fatalf("token %q not listed:\n%s", tokenLabel, tokens)
	}
	tokenURI := ""
	for _, line := range strings.Split(tokens, "\n") {
		if u, ok := strings.CutPrefix(strings.TrimSpace(line), "URL: "); ok && strings.Contains(u, "token="+strings.ReplaceAll(tokenLabel, " ", "%20")) {
			tokenURI = u
		}
	}
	if tokenURI == "" {
		t.Fatalf("no URL for %q in:\n%s", tokenLabel, tokens)
	}
	t.Logf("token URI %s", tokenURI)

	t.Run("list-all-certs", func(t *testing.T) {
		out := p11tool(t, "--list-all-certs", tokenURI)
		for _, k := range f.keys {
			if !strings.Contains(out, "Label: "+k.label+"\n") || !strings.Contains(out, "ID: "+colonHex(k.id)) {
				t.Errorf("certificate %q (ID %s) not listed:\n%s", k.label, k.id, out)
			}
		}
		if n := strings.Count(out, "Type: X.509 Certificate"); n != 4 {
			t.Errorf("%d certificates, want 4 (two keys, issuing CA, root):\n%s", n, out)
		}
	})

	t.Run("list-all", func(t *testing.T) {
		out := p11tool(t, "--list-all", tokenURI)
		if strings.Contains(out, "Type: Private key") {
			t.Errorf("private keys listed without login:\n%s", out)
		}
		out = p11tool(t, "--login", "--set-pin", pin, "--list-all", tokenURI)
		for _, k := range f.keys {
			for _, typ := range []string{"Private key", "Public key", "X.509 Certificate"} {
				if !hasObject(out, typ, k.label, colonHex(k.id)) {
					t.Errorf("no %s %q with ID %s:\n%s", typ, k.label, k.id, out)
				}
			}
		}
	})

	for _, k := range []*key{f.rsa, f.ec} {
		t.Run("test-sign/"+k.label, func(t *testing.T) {
			uri := tokenURI + ";id=" + pctID(k.id) + ";type=private"
			r := f.run(t, 2*time.Minute, "", "p11tool", "--provider", f.lib, "--login", "--set-pin", pin, "--test-sign", uri)
			out := r.Stdout + r.Stderr
			if r.Err != nil {
				t.Fatalf("p11tool --test-sign: %v", r)
			}
			// p11tool signs, then verifies with the public key of the
			// certificate (or public key object) with the same ID.
			if strings.Count(out, "Verifying against public key in the token... ok") < 1 || strings.Contains(out, "failed") {
				t.Fatalf("p11tool --test-sign did not verify:\n%s", out)
			}
			t.Logf("%s", out)
		})
	}
}

// colonHex is how p11tool shows an ID: aa:bb:cc.
func colonHex(id string) string {
	var parts []string
	for i := 0; i+1 < len(id); i += 2 {
		parts = append(parts, id[i:i+2])
	}
	return strings.Join(parts, ":")
}

// hasObject says whether p11tool's listing holds an object of a type with a
// label and ID.
func hasObject(out, typ, label, id string) bool {
	for _, obj := range strings.Split(out, "Object ") {
		if strings.Contains(obj, "Type: "+typ) && strings.Contains(obj, "Label: "+label+"\n") && strings.Contains(obj, "ID: "+id) {
			return true
		}
	}
	return false
}
