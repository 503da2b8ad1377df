package programs

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOsslsigncode Authenticode-signs a Windows executable (a tiny Go
// program cross-compiled for windows/amd64) with each key on the token:
// osslsigncode loads libp11's pkcs11 engine (by id: no -pkcs11engine,
// which 2.5 refuses with "bad engine id" for the engine's path) with
// -pkcs11module libcsctoken.so and takes the certificate and the key from
// the token by pkcs11: URI. Then `osslsigncode verify` with the rssp's CAs accepts the
// signature and names the signer, and `osslsigncode extract-signature`
// gives the certificate that signed: the credential's.
func TestOsslsigncode(t *testing.T) {
	need(t, "osslsigncode", enginePath)
	f := newFixture(t)

	// A minimal valid PE: Go cross-compiles without extra packages.
	src := f.write(t, "hello/main.go", []byte("package main\n\nfunc main() { println(\"signed through csctoken\") }\n"))
	f.write(t, "hello/go.mod", []byte("module hello\n\ngo 1.21\n"))
	exe := f.path("hello.exe")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", exe, ".")
	build.Dir = filepath.Dir(src)
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows go build: %v\n%s", err, out)
	}

	token := "pkcs11:token=" + strings.ReplaceAll(tokenLabel, " ", "%20")
	for _, k := range []*key{f.rsa, f.ec} {
		t.Run(k.label, func(t *testing.T) {
			signed := f.path(k.label + ".signed.exe")
			out := f.mustRun(t, "osslsigncode", "sign",
				"-pkcs11module", f.lib,
				"-pkcs11cert", token+";id="+pctID(k.id)+";type=cert",
				"-key", token+";id="+pctID(k.id)+";type=private",
				"-pass", pin, "-h", "sha256", "-n", "csctoken test", "-in", exe, "-out", signed)
			if !strings.Contains(out, "Succeeded") {
				t.Errorf("osslsigncode sign: %q", out)
			}
			r := f.run(t, 2*time.Minute, "", "osslsigncode", "verify", "-CAfile", f.caPEM, "-in", signed)
			if r.Err != nil {
				t.Fatalf("osslsigncode verify: %v", r)
			}
			for _, want := range []string{
				"Signature verification: ok",
				"Subject: /O=" + strings.Join(k.cert.Subject.Organization, "") + "/CN=" + k.cert.Subject.CommonName,
				"Succeeded",
			} {
				if !strings.Contains(r.Stdout, want) {
					t.Errorf("no %q in osslsigncode verify:\n%s", want, r.Stdout)
				}
			}
			// The signer's certificate in the PKCS#7 is the credential's.
			sig := f.path(k.label + ".p7")
			// -pem: without it, 2.5 writes the WIN_CERTIFICATE header
			// before the DER, 2.9 does not.
			f.mustRun(t, "osslsigncode", "extract-signature", "-pem", "-in", signed, "-out", sig)
			pemOut := f.mustRun(t, "openssl", "pkcs7", "-in", sig, "-print_certs")
			certs := parseCerts(t, pemOut)
			if !slices.ContainsFunc(certs, k.cert.Equal) {
				t.Errorf("the signature does not carry %s's certificate:\n%s", k.label, pemOut)
			}
		})
	}
}

// parseCerts returns the certificates in PEM text (openssl's output).
func parseCerts(t *testing.T, pemText string) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := []byte(pemText); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return certs
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
}
