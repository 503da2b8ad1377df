package e2e

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
)

// fixture is a server with the enrolled user, and a C host environment
// logged in to it with `csctoken login`.
type fixture struct {
	srv   *server
	creds credentials
	env   *env
}

func newFixture(t *testing.T, o rssptest.Options) *fixture {
	t.Helper()
	need(t, "pkcs11-tool", "openssl")
	f := &fixture{srv: startRSSPTest(t, o)}
	f.creds = enrol(t, f.srv, user, password)
	f.env = newEnv(t)
	f.env.useConfig(t, serviceTOML(tokenLabel, f.srv, user))
	f.env.login(t, password)
	return f
}

// key is what the token shows of one credential.
type key struct {
	id      string // CKA_ID, hex
	cert    *x509.Certificate
	pubPEM  string // the certificate's public key for openssl
	allowed []string
}

// The document and the inputs of the mechanisms that take a hash.
var (
	document  = []byte("a contract signed through libcsctoken.so by pkcs11-tool\n")
	docSHA256 = sha256.Sum256(document)
	docSHA384 = sha512.Sum384(document)
	docSHA512 = sha512.Sum512(document)
	inputs    = map[string][]byte{
		"data":      document,
		"sha256":    docSHA256[:],
		"sha384":    docSHA384[:],
		"di-sha256": append(hexBytes("3031300d060960864801650304020105000420"), docSHA256[:]...),
		"di-sha512": append(hexBytes("3051300d060960864801650304020305000440"), docSHA512[:]...),
	}
)

func hexBytes(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// signCase is one signature made with pkcs11-tool --sign and checked by
// openssl (the digest of the document with the case's hash, with PSS
// padding and salt length when salt > 0) and by pkcs11-tool --verify.
type signCase struct {
	mech, key, input string
	extra            []string
	hash             string // openssl dgst's digest
	salt             int    // PSS salt length, 0 for PKCS#1 v1.5 and ECDSA
	core             bool   // also run on the second backend
}

var ecFormat = []string{"--signature-format", "openssl"}

var signCases = []signCase{
	// RSA PKCS#1 v1.5: CKM_RSA_PKCS takes a DigestInfo.
	{"RSA-PKCS", labelRSA, "di-sha256", nil, "sha256", 0, false},
	{"RSA-PKCS", labelRSA, "di-sha512", nil, "sha512", 0, false},
	{"SHA256-RSA-PKCS", labelRSA, "data", nil, "sha256", 0, true},
	{"SHA384-RSA-PKCS", labelRSA, "data", nil, "sha384", 0, false},
	{"SHA512-RSA-PKCS", labelRSA, "data", nil, "sha512", 0, false},
	// RSA-PSS: CKM_RSA_PKCS_PSS takes the hash; the parameters say which.
	{"RSA-PKCS-PSS", labelRSA, "sha256", []string{"--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256", "--salt-len", "32"}, "sha256", 32, true},
	{"RSA-PKCS-PSS", labelRSA, "sha384", []string{"--hash-algorithm", "SHA384", "--mgf", "MGF1-SHA384", "--salt-len", "48"}, "sha384", 48, false},
	{"SHA256-RSA-PKCS-PSS", labelRSA, "data", []string{"--mgf", "MGF1-SHA256", "--salt-len", "32"}, "sha256", 32, true},
	// pkcs11-tool's defaults: MGF1 with the same hash, salt of the hash's length.
	{"SHA384-RSA-PKCS-PSS", labelRSA, "data", nil, "sha384", 48, false},
	{"SHA512-RSA-PKCS-PSS", labelRSA, "data", nil, "sha512", 64, false},
	// ECDSA: CKM_ECDSA takes the hash (also one longer than the curve).
	{"ECDSA", labelEC, "sha256", ecFormat, "sha256", 0, true},
	{"ECDSA", labelEC, "sha384", ecFormat, "sha384", 0, false},
	{"ECDSA-SHA256", labelEC, "data", ecFormat, "sha256", 0, true},
	{"ECDSA-SHA384", labelEC, "data", ecFormat, "sha384", 0, false},
	{"ECDSA-SHA512", labelEC, "data", ecFormat, "sha512", 0, false},
	// SCAL2: each signature authorized for its hash.
	{"ECDSA", labelSCAL2, "sha256", ecFormat, "sha256", 0, false},
	{"ECDSA-SHA256", labelSCAL2, "data", ecFormat, "sha256", 0, true},
	{"ECDSA-SHA384", labelSCAL2, "data", ecFormat, "sha384", 0, false},
	{"ECDSA-SHA512", labelSCAL2, "data", ecFormat, "sha512", 0, false},
}

// offered is what the token must offer for signing: PKCS#1 v1.5, PSS and
// ECDSA with SHA-256 and stronger; no SHA-1 or SHA-224, which our rssp
// refuses.
var offered = strings.Fields(`ECDSA ECDSA-SHA256 ECDSA-SHA384 ECDSA-SHA512 RSA-PKCS RSA-PKCS-PSS
	SHA256-RSA-PKCS SHA256-RSA-PKCS-PSS SHA384-RSA-PKCS SHA384-RSA-PKCS-PSS SHA512-RSA-PKCS SHA512-RSA-PKCS-PSS`)

// TestPkcs11Tool drives the shipped module with pkcs11-tool against a real
// RSSP: the whole matrix with keys in SoftHSM2, the core checks again with
// the software keystore.
func TestPkcs11Tool(t *testing.T) {
	for _, backend := range []rssptest.Backend{rssptest.PKCS11, rssptest.Soft} {
		t.Run(string(backend), func(t *testing.T) {
			testPkcs11Tool(t, backend, backend == rssptest.PKCS11)
		})
	}
}

func testPkcs11Tool(t *testing.T, backend rssptest.Backend, full bool) {
	f := newFixture(t, rssptest.Options{Backend: backend})
	e := f.env

	t.Run("list-slots", func(t *testing.T) {
		out := e.mustTool(t, "--list-slots")
		for _, want := range []string{
			"token label        : " + tokenLabel + "\n",
			"token flags        : login required, rng, token initialized, PIN initialized, readonly\n",
			"token model        : CSC v2\n",
			"(" + strings.TrimSuffix(strings.TrimPrefix(f.srv.URL, "https://"), "/csc/v2") + ")",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`serial num\s+: [0-9a-f]{16}\n`).MatchString(out) {
			t.Errorf("no 16-hex-digit serial in:\n%s", out)
		}
	})

	keys := map[string]*key{}
	ok := t.Run("list-objects", func(t *testing.T) {
		// Before login: certificates, public keys and the profile only,
		// from the listing C_Initialize waits for on a fresh cache.
		objs := parseObjects(e.mustTool(t, "--list-objects"))
		if n := len(ofKind(objs, "privkey")); n != 0 {
			t.Errorf("%d private keys listed before login", n)
		}
		profiles := ofKind(objs, "profile")
		if len(profiles) != 1 || !strings.HasPrefix(profiles[0].attrs["profile_id"], "CKP_PUBLIC_CERTIFICATES_TOKEN") {
			t.Errorf("profile objects %v, want one CKP_PUBLIC_CERTIFICATES_TOKEN", profiles)
		}
		// Three user certificates and the CA chain (issuing CA, root).
		if c, p := len(ofKind(objs, "cert")), len(ofKind(objs, "pubkey")); c != 5 || p != 3 {
			t.Errorf("%d certificates and %d public keys before login, want 5 and 3", c, p)
		}
		// (A host that exits right after C_Initialize may leave a
		// .tmp-* file behind: the first listing is saved after
		// C_Initialize returns. Reported; not counted here.)
		cached, _ := filepath.Glob(e.path("cache", "csctoken", "[0-9a-f]*.cache"))
		if tmp, _ := filepath.Glob(e.path("cache", "csctoken", ".tmp-*")); len(tmp) > 0 {
			t.Logf("leftover cache temporary files: %v", tmp)
		}
		if len(cached) != 1 {
			t.Errorf("cache files %v, want one in $XDG_CACHE_HOME/csctoken", cached)
		} else if st, err := os.Stat(cached[0]); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("cache file %s: %v %v, want mode 0600", cached[0], st.Mode().Perm(), err)
		}

		// After login: one private key per credential, tied by CKA_ID to its
		// certificate and public key; the CA certificates share no key's ID.
		objs = parseObjects(e.mustTool(t, "--list-objects", "--login", "--pin", pin))
		privs := ofKind(objs, "privkey")
		if len(privs) != 3 {
			t.Fatalf("%d private keys after login, want 3:\n%v", len(privs), privs)
		}
		keyIDs := map[string]bool{}
		for _, p := range privs {
			keyIDs[p.id()] = true
			var certs, pubs int
			for _, o := range objs {
				if o.id() == p.id() && o.label() == p.label() {
					switch o.kind {
					case "cert":
						certs++
					case "pubkey":
						pubs++
					}
				}
			}
			if certs != 1 || pubs != 1 {
				t.Errorf("private key %q (ID %s): %d certificates and %d public keys with its ID and label, want 1 and 1", p.label(), p.id(), certs, pubs)
			}
			if !strings.Contains(p.attrs["Access"], "never extractable") || !strings.Contains(p.attrs["Usage"], "sign") {
				t.Errorf("private key %q: usage %q, access %q", p.label(), p.attrs["Usage"], p.attrs["Access"])
			}
			keys[p.label()] = &key{id: p.id(), allowed: strings.Split(p.attrs["Allowed mechanisms"], ",")}
		}
		for _, c := range ofKind(objs, "cert") {
			if _, user := keys[c.label()]; !user && keyIDs[c.id()] {
				t.Errorf("CA certificate %q shares a key's CKA_ID %s", c.label(), c.id())
			}
		}
		for _, label := range []string{labelRSA, labelEC, labelSCAL2} {
			k := keys[label]
			if k == nil {
				t.Fatalf("no private key labelled %q", label)
			}
			der := e.path(label + ".der")
			e.mustTool(t, "--read-object", "--type", "cert", "--id", k.id, "--output-file", der)
			raw, err := os.ReadFile(der)
			if err != nil {
				t.Fatal(err)
			}
			if k.cert, err = x509.ParseCertificate(raw); err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			if got := keyID(t, k.cert); got != k.id {
				t.Errorf("%s: CKA_ID %s, want the SHA-1 of the public key, %s", label, k.id, got)
			}
			if k.cert.Subject.CommonName != user {
				t.Errorf("%s: certificate of %q, want %q", label, k.cert.Subject.CommonName, user)
			}
			k.pubPEM = e.path(label + ".pub")
			e.mustRun(t, "openssl", "x509", "-inform", "DER", "-in", der, "-pubkey", "-noout", "-out", k.pubPEM)
		}

		if got := signMechanisms(e.mustTool(t, "--list-mechanisms")); !slices.Equal(got, offered) {
			t.Errorf("signature mechanisms\n got %v\nwant %v", got, offered)
		}
	})
	if !ok {
		return
	}

	t.Run("sign", func(t *testing.T) {
		for name, in := range inputs {
			e.write(t, name, in)
		}
		for i, tc := range signCases {
			if !full && !tc.core {
				continue
			}
			k := keys[tc.key]
			t.Run(fmt.Sprintf("%s/%s/%s", tc.mech, tc.key, tc.input), func(t *testing.T) {
				sig := e.path(fmt.Sprintf("sig-%d", i))
				in := e.path(tc.input)
				e.mustTool(t, append([]string{"--login", "--pin", pin, "--sign", "--mechanism", tc.mech, "--id", k.id,
					"--input-file", in, "--output-file", sig}, tc.extra...)...)

				args := []string{"dgst", "-" + tc.hash, "-verify", k.pubPEM, "-signature", sig}
				if tc.salt > 0 {
					args = append(args, "-sigopt", "rsa_padding_mode:pss", "-sigopt", fmt.Sprintf("rsa_pss_saltlen:%d", tc.salt))
				}
				if out := e.mustRun(t, "openssl", append(args, e.path("data"))...); !strings.Contains(out, "Verified OK") {
					t.Errorf("openssl: %s", out)
				}

				out := e.mustTool(t, append([]string{"--verify", "--mechanism", tc.mech, "--id", k.id,
					"--input-file", in, "--signature-file", sig}, tc.extra...)...)
				if !strings.Contains(out, "Signature is valid") {
					t.Errorf("pkcs11-tool --verify: %s", out)
				}
			})
		}

		// CKM_ECDSA's own format is r||s of the curve's size.
		t.Run("ECDSA/raw", func(t *testing.T) {
			k := keys[labelEC]
			sig := e.path("ecdsa.rs")
			e.mustTool(t, "--login", "--pin", pin, "--sign", "--mechanism", "ECDSA", "--id", k.id,
				"--input-file", e.path("sha256"), "--output-file", sig)
			raw, err := os.ReadFile(sig)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) != 64 {
				t.Fatalf("raw ECDSA signature of %d bytes, want 64", len(raw))
			}
			r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
			if !ecdsa.Verify(k.cert.PublicKey.(*ecdsa.PublicKey), docSHA256[:], r, s) {
				t.Error("raw ECDSA signature does not verify")
			}
		})

		// A signature of another document does not verify.
		t.Run("verify-rejects", func(t *testing.T) {
			k := keys[labelRSA]
			sig := e.path("other.sig")
			other := e.write(t, "other", []byte("another document"))
			e.mustTool(t, "--login", "--pin", pin, "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", k.id,
				"--input-file", other, "--output-file", sig)
			r := e.tool(t, "--verify", "--mechanism", "SHA256-RSA-PKCS", "--id", k.id,
				"--input-file", e.path("data"), "--signature-file", sig)
			if strings.Contains(r.Stdout, "Signature is valid") || !strings.Contains(r.Stdout+r.Stderr, "nvalid signature") {
				t.Errorf("pkcs11-tool --verify of the wrong document: %v", r)
			}
		})

		if full {
			// Every mechanism a key allows has a case above.
			for label, k := range keys {
				for _, m := range k.allowed {
					if !slices.ContainsFunc(signCases, func(c signCase) bool { return c.key == label && c.mech == m }) {
						t.Errorf("%s allows %s, which no case covers", label, m)
					}
				}
			}
		}
	})
	if !full {
		return
	}

	t.Run("test", func(t *testing.T) { testTest(t, e) })
	t.Run("test-threads", func(t *testing.T) {
		// Three threads each C_Initialize with CKF_OS_LOCKING_OK (one
		// wins, the others get CKR_CRYPTOKI_ALREADY_INITIALIZED) and read
		// info, slots and token, while the main thread logs in and lists
		// the objects (not --test: that stops at the SHA-1 signature, before
		// pkcs11-tool joins the threads).
		r := e.tool(t, "--test-threads", "ILGISLT0", "--test-threads", "ILGISL", "--test-threads", "ILSLGI",
			"--login", "--pin", pin, "--list-objects")
		if !strings.Contains(r.Stderr, "all threads have ended with CKR_OK") || !strings.Contains(r.Stdout, "Private Key Object") {
			t.Errorf("threads: %v", r)
		}
	})
	t.Run("test-fork", func(t *testing.T) {
		// The child initializes again and exits; nothing hangs.
		r := e.run(t, 30*time.Second, "", "pkcs11-tool", "--module", e.lib, "--test-fork")
		if r.Err != nil || !strings.Contains(r.Stdout, "C_Initialize in forked child") {
			t.Errorf("--test-fork: %v", r)
		}
		if r.Took > 10*time.Second {
			t.Errorf("--test-fork took %v", r.Took)
		}
	})
	t.Run("scal2-audit", func(t *testing.T) { testSCAL2Audit(t, f, keys[labelSCAL2]) })
}

// testTest runs pkcs11-tool --test --login, what testers start with. The
// signature mechanisms carry CKF_HW (the service's device signs), so its
// signature section runs; pkcs11-tool hard-wires its first RSA signature
// as CKM_RSA_PKCS over a SHA-1 DigestInfo, which the token refuses with
// CKR_DATA_INVALID because our rssp refuses SHA-1 (the CSC spec asks for
// SHA-256 or stronger; docs/mapping.md, "SHA-1"), and pkcs11-tool aborts
// there. That refusal is the one deliberate error: random numbers and
// digests pass, no check reports an ERR line before the abort, and the
// module log says why.
func testTest(t *testing.T, e *env) {
	for _, args := range [][]string{{"--test", "--login", "--pin", pin}, {"--test", "--login", "--pin", pin, "--allow-sw"}} {
		checkTestOutput(t, e, args, e.tool(t, args...))
	}
}

// checkTestOutput checks the report of pkcs11-tool --test (see testTest).
func checkTestOutput(t *testing.T, e *env, args []string, r result) {
	t.Helper()
	for _, want := range []string{"C_GenerateRandom", "seems to be OK", "all 4 digest functions seem to work", "SHA256: OK",
		"Signatures (currently only for RSA)"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("%v: no %q in the output: %v", args, want, r)
		}
	}
	if strings.Contains(r.Stdout, "ERR") || strings.Contains(r.Stdout, "not implemented") {
		t.Errorf("%v: a check failed before the SHA-1 signature, or signatures were skipped: %v", args, r)
	}
	if r.Err == nil || !strings.Contains(r.Stderr, "C_SignFinal failed: rv = CKR_DATA_INVALID") {
		t.Errorf("%v: want the one deliberate error, the SHA-1 DigestInfo refused at C_SignFinal: %v", args, r)
	}
	if log := e.logText(t); !strings.Contains(log, "hash SHA-1 not offered by the service") {
		t.Errorf("the module log does not say why the SHA-1 DigestInfo was refused")
	}
}

// testSCAL2Audit signs three documents with the SCAL2 credential through
// pkcs11-tool and finds, in the server's audit log, one authorization
// bound to each document's hash and one signature of it.
func testSCAL2Audit(t *testing.T, f *fixture, k *key) {
	e, id := f.env, f.creds[labelSCAL2]
	authBefore := len(auditEvents(t, f.srv, "authorize", id))
	signBefore := len(auditEvents(t, f.srv, "sign", id))
	var want [][]string
	for i := range 3 {
		doc := e.write(t, fmt.Sprintf("scal2-%d", i), fmt.Appendf(nil, "SCAL2 document %d", i))
		data, _ := os.ReadFile(doc)
		sum := sha256.Sum256(data)
		want = append(want, []string{b64(sum[:])})
		sig := doc + ".sig"
		e.mustTool(t, "--login", "--pin", pin, "--sign", "--mechanism", "ECDSA-SHA256", "--id", k.id,
			"--input-file", doc, "--output-file", sig, "--signature-format", "openssl")
		e.mustRun(t, "openssl", "dgst", "-sha256", "-verify", k.pubPEM, "-signature", sig, doc)
	}
	auth := auditEvents(t, f.srv, "authorize", id)[authBefore:]
	sign := auditEvents(t, f.srv, "sign", id)[signBefore:]
	if !slices.EqualFunc(auth, want, slices.Equal) {
		t.Errorf("authorize rows for the SCAL2 credential: got hashes %v, want one per signature %v", auth, want)
	}
	if !slices.EqualFunc(sign, want, slices.Equal) {
		t.Errorf("sign rows for the SCAL2 credential: got hashes %v, want %v", sign, want)
	}
	t.Logf("SCAL2: %d authorize and %d sign rows for 3 signatures", len(auth), len(sign))
}
