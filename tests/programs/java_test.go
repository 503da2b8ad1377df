package programs

import (
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestJava uses the module through Java 17's SunPKCS11 provider, configured
// by `csctoken register --java FILE`: keytool
// lists both keys with their chains, jarsigner signs a jar with each key,
// and jarsigner -verify -strict accepts it (chain validated to the rssp's
// root, imported as the only trust anchor).
func TestJava(t *testing.T) {
	need(t, "java", "keytool", "jarsigner", "jar")
	f := newFixture(t)
	// The configuration is the one the users' command writes.
	cfg := f.path("sunpkcs11.cfg")
	if out := f.mustRun(t, cli(t), "register", "--java", cfg, "--library", f.lib); !strings.Contains(out, "registered "+f.lib) {
		t.Fatalf("register --java: %q", out)
	}
	if out := f.mustRun(t, cli(t), "register", "--java", cfg, "--library", f.lib); !strings.Contains(out, "already registered") {
		t.Fatalf("register --java again: %q", out)
	}
	p11 := []string{"-storetype", "PKCS11", "-providerClass", "sun.security.pkcs11.SunPKCS11", "-providerArg", cfg, "-storepass", pin}

	t.Run("keytool", func(t *testing.T) {
		out := f.mustRun(t, "keytool", append([]string{"-list", "-v", "-keystore", "NONE"}, p11...)...)
		for _, k := range []*key{f.rsa, f.ec} {
			i := strings.Index(out, "Alias name: "+k.label+"\n")
			if i < 0 {
				t.Errorf("no entry %q in:\n%s", k.label, out)
				continue
			}
			entry := out[i:]
			if j := strings.Index(entry[1:], "Alias name: "); j > 0 {
				entry = entry[:j+1]
			}
			want := fmt.Sprintf("Certificate chain length: %d\n", 1+len(f.cas))
			if !strings.Contains(entry, "Entry type: PrivateKeyEntry") || !strings.Contains(entry, want) {
				t.Errorf("entry %q: want a PrivateKeyEntry with %q:\n%s", k.label, want, entry)
			}
		}
	})

	// The trust anchor of the verification: the rssp's root only.
	root := f.cas[len(f.cas)-1]
	rootFile := f.write(t, "root.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}))
	trust := f.path("trust.p12")
	f.mustRun(t, "keytool", "-importcert", "-noprompt", "-alias", "root", "-file", rootFile,
		"-keystore", trust, "-storetype", "PKCS12", "-storepass", "changeit")
	f.write(t, "jar/hello.txt", []byte("signed through libcsctoken.so by jarsigner\n"))
	unsigned := f.path("hello.jar")
	f.mustRun(t, "jar", "cf", unsigned, "-C", f.path("jar"), "hello.txt")

	for _, k := range []*key{f.rsa, f.ec} {
		t.Run("jarsigner/"+k.label, func(t *testing.T) {
			signed := f.path(k.label + ".jar")
			out := f.mustRun(t, "jarsigner", append(append([]string{"-keystore", "NONE"}, p11...),
				"-signedjar", signed, unsigned, k.label)...)
			if !strings.Contains(out, "jar signed.") {
				t.Fatalf("jarsigner: %q", out)
			}
			r := f.run(t, 2*time.Minute, "", "jarsigner", "-verify", "-strict", "-verbose", "-certs",
				"-keystore", trust, "-storetype", "PKCS12", "-storepass", "changeit", signed)
			if r.Err != nil || !strings.Contains(r.Stdout, "jar verified.") {
				t.Fatalf("jarsigner -verify -strict: %v", r)
			}
			if !strings.Contains(r.Stdout, "CN="+user) {
				t.Errorf("jarsigner -verify does not show the signer %q:\n%s", user, r.Stdout)
			}
		})
	}
}
