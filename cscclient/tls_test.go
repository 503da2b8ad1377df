package cscclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a self-signed server certificate for the names and
// IPs given.
func selfSigned(t *testing.T, dns []string, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "test server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func writePEM(t *testing.T, certs ...tls.Certificate) string {
	t.Helper()
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tlsServer serves callInfo's and callSignHash's good answers with cert;
// it records the request bodies.
func tlsServer(t *testing.T, cert tls.Certificate, bodies chan<- string) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if bodies != nil {
			bodies <- string(b)
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/info") {
			io.WriteString(w, callInfo.goodBody())
			return
		}
		io.WriteString(w, callSignHash.goodBody())
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func lazy(t *testing.T, c *Client) *lazyRoots {
	t.Helper()
	l, ok := c.tr.(*lazyRoots)
	if !ok {
		t.Fatalf("transport %T, want *lazyRoots with a CA file over the system roots", c.tr)
	}
	return l
}

// TestCAFileFirst: with a CA file, a server that chains to it is verified
// without the system roots ever being loaded.
func TestCAFileFirst(t *testing.T) {
	cert := selfSigned(t, []string{"localhost"}, net.ParseIP("127.0.0.1"))
	srv := tlsServer(t, cert, nil)
	c := mustClient(t, srv.URL+"/csc/v2", WithCAFile(writePEM(t, cert)))
	l := lazy(t, c)
	l.fallback = func() transport { t.Error("system roots loaded"); return roundTripper(&config{}, nil) }
	for range 3 {
		if _, err := c.Info(testCtx(t), nil); err != nil {
			t.Fatal(err)
		}
	}
	if l.fb != nil {
		t.Fatal("fallback transport built")
	}
	// WithRootCAs replaces the system roots: no fallback at all.
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	c2 := mustClient(t, srv.URL+"/csc/v2", WithRootCAs(pool), WithCAFile(writePEM(t, cert)))
	if _, ok := c2.tr.(*lazyRoots); ok {
		t.Fatalf("transport %T with WithRootCAs", c2.tr)
	}
}

// TestSystemRootsFallback: a server that does not chain to the CA file
// but to the system roots (here a stand-in pool) is reached on the
// fallback, with the request body intact; the host then stays on it.
// A certificate for another host name is refused without a fallback.
func TestSystemRootsFallback(t *testing.T) {
	cert := selfSigned(t, nil, net.ParseIP("127.0.0.1"))
	other := selfSigned(t, nil, net.ParseIP("127.0.0.1"))
	bodies := make(chan string, 10)
	srv := tlsServer(t, cert, bodies)
	c := mustClient(t, srv.URL+"/csc/v2", WithCAFile(writePEM(t, other)), WithTokenSource(StaticToken("AT")))
	fastRetry(c)
	l := lazy(t, c)
	system := x509.NewCertPool()
	system.AddCert(cert.Leaf)
	built := 0
	l.fallback = func() transport { built++; return roundTripper(&config{}, system) }
	if err := callSignHash.run(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	if got := <-bodies; !strings.Contains(got, "credentialID") {
		t.Fatalf("body on the fallback: %q", got)
	}
	if _, ok := l.system.Load(strings.TrimPrefix(srv.URL, "https://")); !ok || built != 1 {
		t.Fatalf("host not marked (built %d)", built)
	}
	if err := callSignHash.run(testCtx(t), c); err != nil || built != 1 {
		t.Fatalf("second call: %v (built %d)", err, built)
	}

	// Trusted by neither: the TLS error.
	c3 := mustClient(t, srv.URL+"/csc/v2", WithCAFile(writePEM(t, other)))
	fastRetry(c3)
	lazy(t, c3).fallback = func() transport { return roundTripper(&config{}, x509.NewCertPool()) }
	if _, err := c3.Info(testCtx(t), nil); !errors.Is(err, ErrTLS) {
		t.Fatalf("untrusted: err = %v, want ErrTLS", err)
	}

	// Chains to the CA file, wrong host name: no second chance.
	named := selfSigned(t, []string{"rssp.example"})
	srv2 := tlsServer(t, named, nil)
	c4 := mustClient(t, srv2.URL+"/csc/v2", WithCAFile(writePEM(t, named)))
	fastRetry(c4)
	l4 := lazy(t, c4)
	l4.fallback = func() transport {
		t.Error("fallback after a host name mismatch")
		return roundTripper(&config{}, nil)
	}
	if _, err := c4.Info(testCtx(t), nil); !errors.Is(err, ErrTLS) {
		t.Fatalf("host name mismatch: err = %v, want ErrTLS", err)
	}
}
