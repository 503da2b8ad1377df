package programs

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// enginePath is where Debian's libengine-pkcs11-openssl puts libp11's
// engine for OpenSSL 3.
const enginePath = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"

// TestOpenSSLEngine signs through libp11's pkcs11 engine with pkcs11:
// URIs: openssl pkeyutl -sign and openssl dgst -sign (PKCS#1 v1.5, PSS,
// ECDSA), each verified with the certificate's public key, and a CSR made
// by openssl req with the remote key, whose self-signature openssl
// verifies.
func TestOpenSSLEngine(t *testing.T) {
	need(t, "openssl", enginePath)
	f := newFixture(t)
	f.setenv("OPENSSL_CONF", f.write(t, "openssl.cnf", []byte(fmt.Sprintf(`openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = %s
MODULE_PATH = %s
init = 0
[req]
distinguished_name = dn
[dn]
`, enginePath, f.lib))))
	doc := []byte("a contract signed through libcsctoken.so by openssl\n")
	docFile := f.write(t, "doc", doc)
	sum := sha256.Sum256(doc)
	hashFile := f.write(t, "doc.sha256", sum[:])
	uri := func(k *key) string {
		return "pkcs11:token=" + strings.ReplaceAll(tokenLabel, " ", "%20") + ";id=" + pctID(k.id) + ";type=private;pin-value=" + pin
	}
	engine := []string{"-engine", "pkcs11", "-keyform", "engine"}

	for _, k := range []*key{f.rsa, f.ec} {
		t.Run(k.label, func(t *testing.T) {
			t.Run("pkeyutl", func(t *testing.T) {
				sig := f.path(k.label + ".pkeyutl.sig")
				f.mustRun(t, "openssl", append(append([]string{"pkeyutl", "-sign"}, engine...),
					"-inkey", uri(k), "-in", hashFile, "-pkeyopt", "digest:sha256", "-out", sig)...)
				out := f.mustRun(t, "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", k.pubPEM,
					"-in", hashFile, "-sigfile", sig, "-pkeyopt", "digest:sha256")
				if !strings.Contains(out, "Signature Verified Successfully") {
					t.Fatalf("openssl pkeyutl -verify: %q", out)
				}
			})
			modes := map[string][]string{"default": nil}
			if k == f.rsa {
				modes["pss"] = []string{"-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"}
			}
			for name, opts := range modes {
				t.Run("dgst/"+name, func(t *testing.T) {
					sig := f.path(k.label + "." + name + ".sig")
					args := append(append([]string{"dgst", "-sha256"}, engine...), "-sign", uri(k), "-out", sig)
					f.mustRun(t, "openssl", append(append(args, opts...), docFile)...)
					f.verify(t, k, "sha256", docFile, sig, opts...)
				})
			}
			t.Run("req", func(t *testing.T) {
				csr := f.path(k.label + ".csr")
				f.mustRun(t, "openssl", append(append([]string{"req", "-new"}, engine...),
					"-key", uri(k), "-subj", "/CN="+user+"/O=csctoken programs", "-sha256", "-out", csr)...)
				r := f.run(t, 2*time.Minute, "", "openssl", "req", "-verify", "-in", csr, "-noout")
				if r.Err != nil || !strings.Contains(r.Stdout+r.Stderr, "verify OK") {
					t.Fatalf("openssl req -verify: %v", r)
				}
				raw, err := os.ReadFile(csr)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := pem.Decode(raw)
				if b == nil {
					t.Fatalf("no PEM in %s", raw)
				}
				req, err := x509.ParseCertificateRequest(b.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				if err := req.CheckSignature(); err != nil {
					t.Errorf("CSR signature: %v", err)
				}
				if !bytes.Equal(req.RawSubjectPublicKeyInfo, k.cert.RawSubjectPublicKeyInfo) {
					t.Errorf("the CSR's public key is not the credential's")
				}
			})
		})
	}
}
