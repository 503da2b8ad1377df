package programs

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPdfsig signs a PDF with poppler's pdfsig from an NSS database where
// `csctoken register --nss` put the module (the users' path), the token's
// PIN as -nss-pwd, then verifies the signature with pdfsig against a
// separate database that trusts only the rssp's root.
func TestPdfsig(t *testing.T) {
	need(t, "pdfsig", "modutil", "certutil")
	f := newFixture(t)
	csctoken := cli(t)

	db := f.path("nssdb")
	f.write(t, "nssdb/.keep", nil)
	f.mustRun(t, "certutil", "-N", "-d", "sql:"+db, "--empty-password")
	if out := f.mustRun(t, csctoken, "register", "--nss", db, "--library", f.lib); !strings.Contains(out, "registered") {
		t.Fatalf("csctoken register --nss: %q", out)
	}

	// The verifier's database: the rssp's root as a trusted CA, the
	// issuing CA as an intermediate; no module.
	vdb := f.path("verifydb")
	f.write(t, "verifydb/.keep", nil)
	f.mustRun(t, "certutil", "-N", "-d", "sql:"+vdb, "--empty-password")
	for i, ca := range f.cas {
		trust := ",,"
		if bytes.Equal(ca.RawIssuer, ca.RawSubject) {
			trust = "CT,C,C"
		}
		file := f.write(t, fmt.Sprintf("ca%d.pem", i), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
		f.mustRun(t, "certutil", "-A", "-d", "sql:"+vdb, "-n", fmt.Sprintf("rssp CA %d", i), "-t", trust, "-a", "-i", file)
	}

	t.Run("list-nicks", func(t *testing.T) {
		out := f.mustRun(t, "pdfsig", "-nssdir", "sql:"+db, "-nss-pwd", pin, "-list-nicks")
		for _, k := range []*key{f.rsa, f.ec} {
			if !strings.Contains(out, tokenLabel+":"+k.label) {
				t.Errorf("no %q in pdfsig -list-nicks:\n%s", k.label, out)
			}
		}
	})

	unsigned := f.write(t, "doc.pdf", minimalPDF("A contract signed through libcsctoken.so by pdfsig"))
	for _, k := range []*key{f.rsa, f.ec} {
		t.Run(k.label, func(t *testing.T) {
			signed := f.path(k.label + ".signed.pdf")
			// poppler 22.12 sizes the signature's placeholder from a trial
			// signature and fails with "unable update signature" unless the
			// real one has exactly the same length. RSA signatures always
			// do; DER ECDSA signatures are 70, 71 or 72 bytes (about 1/4,
			// 1/2, 1/4), so two P-256 signatures match with probability
			// about 3/8 only. Retrying is legitimate for EC only: 20 tries
			// fail together with probability (5/8)^20, below 1e-4.
			tries := 1
			if k == f.ec {
				tries = 20
			}
			for i := 1; ; i++ {
				r := f.run(t, 2*time.Minute, "", "pdfsig", "-nssdir", "sql:"+db, "-nss-pwd", pin,
					"-add-signature", "-nick", tokenLabel+":"+k.label, "-reason", "csctoken test", unsigned, signed)
				if r.Err == nil {
					break
				}
				if i >= tries || !strings.Contains(r.Stdout+r.Stderr, "unable update signature") {
					t.Fatalf("pdfsig -add-signature (try %d): %v", i, r)
				}
				t.Logf("try %d: %s", i, strings.TrimSpace(r.Stderr))
			}
			// Not -no-ocsp: with it, poppler 22.12 reports "Unknown issue
			// with Certificate" for a chain that NSS's vfychain accepts. The
			// certificates have no AIA, so there is nothing to fetch.
			out := f.mustRun(t, "pdfsig", "-nssdir", "sql:"+vdb, signed)
			for _, want := range []string{
				"Signer Certificate Common Name: " + k.cert.Subject.CommonName,
				"Signature Validation: Signature is Valid.",
				"Certificate Validation: Certificate is Trusted.",
				"Total document signed",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in pdfsig's verification:\n%s", want, out)
				}
			}
		})
	}
}

// minimalPDF is a one-page PDF 1.7 with a line of text and a correct
// cross-reference table.
func minimalPDF(text string) []byte {
	content := fmt.Sprintf("BT /F1 12 Tf 72 720 Td (%s) Tj ET", text)
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return b.Bytes()
}
