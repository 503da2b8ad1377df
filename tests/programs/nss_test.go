package programs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNSS adds the module to a fresh NSS database with modutil, lists the
// token's certificates with certutil (before login too), and makes a
// TLS 1.3 handshake with client authentication from NSS's tstclnt to
// openssl s_server with each key (RSA: NSS signs with RSA-PSS).
func TestNSS(t *testing.T) {
	need(t, "modutil", "certutil")
	f := newFixture(t)
	db := "sql:" + f.path("nssdb")
	f.write(t, "nssdb/.keep", nil)
	f.mustRun(t, "certutil", "-N", "-d", db, "--empty-password")
	// modutil asks to confirm unless -force; it also warns about running
	// browsers on stdin.
	f.mustRunIn(t, "\n", "modutil", "-force", "-dbdir", db, "-add", "csctoken", "-libfile", f.lib)
	pwfile := f.write(t, "nss-pin", []byte(pin+"\n"))

	t.Run("modutil-list", func(t *testing.T) {
		out := f.mustRun(t, "modutil", "-dbdir", db, "-list", "csctoken")
		for _, want := range []string{f.lib, "Token Name: " + tokenLabel} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in modutil -list:\n%s", want, out)
			}
		}
	})

	nick := func(k *key) string { return tokenLabel + ":" + k.label }
	t.Run("certutil-list", func(t *testing.T) {
		// Before login: the certificates are public objects.
		out := f.mustRun(t, "certutil", "-L", "-d", db, "-h", "all")
		for _, k := range []*key{f.rsa, f.ec} {
			if !strings.Contains(out, nick(k)) {
				t.Errorf("no %q in certutil -L -h all:\n%s", nick(k), out)
			}
		}
		// The certificate NSS reads is the one of the credential.
		for _, k := range []*key{f.rsa, f.ec} {
			pemOut := f.mustRun(t, "certutil", "-L", "-d", db, "-n", nick(k), "-a")
			b, _ := pem.Decode([]byte(pemOut))
			if b == nil || !bytes.Equal(b.Bytes, k.cert.Raw) {
				t.Errorf("certutil -L -n %q -a: not the credential's certificate:\n%s", nick(k), pemOut)
			}
		}
		// After login: the private keys too.
		out = f.mustRun(t, "certutil", "-K", "-d", db, "-h", tokenLabel, "-f", pwfile)
		for _, k := range []*key{f.rsa, f.ec} {
			if !strings.Contains(out, k.label) {
				t.Errorf("no key %q in certutil -K:\n%s", k.label, out)
			}
		}
	})

	t.Run("tls13-client-auth", func(t *testing.T) {
		need(t, "tstclnt")
		srvCert, srvKey := serverCert(t, f)
		for _, k := range []*key{f.rsa, f.ec} {
			t.Run(k.label, func(t *testing.T) {
				port, serverOut := sServer(t, f, srvCert, srvKey)
				req := f.write(t, "request", []byte("GET / HTTP/1.0\r\n\r\n"))
				r := f.run(t, time.Minute, "", "tstclnt", "-h", "127.0.0.1", "-p", port, "-d", db,
					"-V", "tls1.3:tls1.3", "-o", "-n", nick(k), "-W", pwfile, "-A", req)
				srv := serverOut()
				if r.Err != nil {
					t.Fatalf("tstclnt: %v\nserver:\n%s", r, srv)
				}
				// s_server -www sends back the session, with the client's
				// certificate.
				if !strings.Contains(r.Stdout, "Client certificate") || !strings.Contains(r.Stdout, "CN = "+user) && !strings.Contains(r.Stdout, "CN="+user) {
					t.Errorf("s_server did not report the client certificate:\n%s\nserver:\n%s", r.Stdout, srv)
				}
				if !strings.Contains(r.Stdout, "TLSv1.3") {
					t.Errorf("not TLS 1.3:\n%s", r.Stdout)
				}
				b, _ := pem.Decode([]byte(r.Stdout[strings.Index(r.Stdout, "-----BEGIN CERTIFICATE-----"):]))
				if b == nil || !bytes.Equal(b.Bytes, k.cert.Raw) {
					t.Errorf("the server saw another certificate than %s's:\n%s", k.label, r.Stdout)
				}
				// And the server verified the chain up to the rssp's root.
				if !strings.Contains(srv, "CN = "+user+", serialNumber = ") || strings.Contains(srv, "verify error") {
					t.Errorf("s_server did not verify the client's chain:\n%s", srv)
				}
			})
		}
	})
}

// serverCert makes a self-signed P-256 certificate for 127.0.0.1.
func serverCert(t *testing.T, f *fixture) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return f.write(t, "server.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		f.write(t, "server.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}))
}

// lockedBuffer is a bytes.Buffer safe for a process's output and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sServer starts `openssl s_server -www` requiring a client certificate
// issued by the rssp's CA, TLS 1.3 only, on a free port of 127.0.0.1. It
// returns the port and a function returning the server's output so far.
func sServer(t *testing.T, f *fixture, cert, key string) (string, func() string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "openssl", "s_server", "-accept", "127.0.0.1:"+port, "-cert", cert, "-key", key,
		"-Verify", "1", "-CAfile", f.caPEM, "-tls1_3", "-www")
	cmd.Env, cmd.Dir = f.vars, f.dir
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			// The probe is a failed handshake in the server's output.
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("openssl s_server did not listen:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return port, out.String
}
