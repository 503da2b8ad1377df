package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func trustOnly(t *testing.T, caPath string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatal("no certificate in", caPath)
	}
	return p
}

// get connects to srv (listening on 127.0.0.1) as serverName, trusting roots.
func get(srv *httptest.Server, roots *x509.CertPool, serverName string) error {
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12},
		},
	}
	resp, err := client.Get(srv.URL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if string(body) != "hello" {
		return errors.New("unexpected body " + string(body))
	}
	return nil
}

func startTLS(t *testing.T, cert tls.Certificate) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if host, _, _ := net.SplitHostPort(srv.Listener.Addr().String()); host != "127.0.0.1" {
		t.Fatalf("test server on %s, want 127.0.0.1", host)
	}
	return srv
}

func TestCreateTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := CreateTLS(dir, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		mode fs.FileMode
	}{
		{files.CAKeyPath, 0o600}, {files.KeyPath, 0o600}, {files.CACertPath, 0o644}, {files.CertPath, 0o644},
	} {
		st, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.path, st.Mode().Perm(), tt.mode)
		}
	}
	if files.CACertPath != filepath.Join(dir, "tls-ca.pem") {
		t.Errorf("CA path %s", files.CACertPath)
	}

	leaf := files.Certificate.Leaf
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("server key %T, want P-256", leaf.PublicKey)
	}
	if ca, ok := files.CA.PublicKey.(*ecdsa.PublicKey); !ok || ca.Curve != elliptic.P256() {
		t.Errorf("TLS CA key %T, want P-256", files.CA.PublicKey)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("EKU %v", leaf.ExtKeyUsage)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Error("server certificate is not CA:FALSE")
	}
	if !slices.Equal(leaf.DNSNames, []string{"localhost"}) || len(leaf.IPAddresses) != 2 ||
		!leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if d := time.Until(leaf.NotAfter); d < TLSServerValidity-time.Hour || d > TLSServerValidity {
		t.Errorf("server validity %v", d)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, files.CA.SubjectKeyId) {
		t.Error("authorityKeyIdentifier does not name the TLS CA")
	}

	roots := trustOnly(t, files.CACertPath)
	srv := startTLS(t, files.Certificate)
	tests := []struct {
		name       string
		roots      *x509.CertPool
		serverName string
		ok         bool
	}{
		{"by IP", roots, "", true},
		{"as localhost", roots, "localhost", true},
		{"as another name", roots, "rssp.example", false},
		{"without the TLS CA", x509.NewCertPool(), "", false},
		{"trusting the credential CA", trustOnly(t, filepath.Join(mustSharedDir(t), RootCertFile)), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := get(srv, tt.roots, tt.serverName)
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	// ::1 is not listened on by httptest; check the name with Verify.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "::1"}); err != nil {
		t.Errorf("::1: %v", err)
	}

	// LoadTLS round-trips.
	loaded, err := LoadTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loaded.Certificate.Leaf.Raw, leaf.Raw) || !loaded.CA.Equal(files.CA) {
		t.Error("LoadTLS returned other certificates")
	}
	if err := get(startTLS(t, loaded.Certificate), roots, ""); err != nil {
		t.Errorf("loaded certificate: %v", err)
	}

	// No overwriting.
	if _, err := CreateTLS(dir, nil, ""); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateTLS again: err = %v, want fs.ErrExist", err)
	}
}

func mustSharedDir(t *testing.T) string {
	t.Helper()
	_, dir := testCA(t)
	return dir
}

func TestReissueTLS(t *testing.T) {
	dir := t.TempDir()
	first, err := CreateTLS(dir, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(first.CACertPath)
	caKeyBefore, _ := os.ReadFile(first.CAKeyPath)

	re, err := ReissueTLS(dir, []string{"192.0.2.7", "RSSP.example.", "[2001:db8::1]", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := re.Certificate.Leaf
	if !slices.Equal(leaf.DNSNames, []string{"rssp.example"}) || len(leaf.IPAddresses) != 2 {
		t.Errorf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	roots := trustOnly(t, re.CACertPath)
	for _, name := range []string{"192.0.2.7", "rssp.example", "2001:db8::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"}); err == nil {
		t.Error("reissued certificate still valid for 127.0.0.1")
	}
	if caAfter, _ := os.ReadFile(re.CACertPath); !bytes.Equal(caBefore, caAfter) {
		t.Error("TLS CA certificate changed")
	}
	if caKeyAfter, _ := os.ReadFile(re.CAKeyPath); !bytes.Equal(caKeyBefore, caKeyAfter) {
		t.Error("TLS CA key changed")
	}
	if st, err := os.Stat(re.KeyPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("reissued key: %v %v", st.Mode(), err)
	}
	loaded, err := LoadTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loaded.Certificate.Leaf.Raw, leaf.Raw) {
		t.Error("LoadTLS does not see the reissued certificate")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("%d files in dir after reissue, want 4", len(entries))
	}
	// Back to the loopback names, served for real.
	back, err := ReissueTLS(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := get(startTLS(t, back.Certificate), roots, ""); err != nil {
		t.Error(err)
	}
}

func TestParseHosts(t *testing.T) {
	tests := []struct {
		in      []string
		dns     []string
		ips     int
		wantErr bool
	}{
		{nil, []string{"localhost"}, 2, false},
		{[]string{"[::1]"}, nil, 1, false},
		{[]string{"*.example.com", "a-b.example.com"}, []string{"*.example.com", "a-b.example.com"}, 0, false},
		{[]string{"10.0.0.1", "10.0.0.1", "::ffff:10.0.0.1"}, nil, 1, false},
		{[]string{"0.0.0.0"}, nil, 0, true},
		{[]string{"::"}, nil, 0, true},
		{[]string{"bad_name"}, nil, 0, true},
		{[]string{"host:8443"}, nil, 0, true},
		{[]string{""}, nil, 0, true},
		{[]string{"-a.example"}, nil, 0, true},
		{[]string{"a.*.example"}, nil, 0, true},
	}
	for _, tt := range tests {
		h, err := parseHosts(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err = %v", tt.in, err)
			continue
		}
		if err != nil {
			continue
		}
		if !slices.Equal(h.dns, tt.dns) || len(h.ips) != tt.ips {
			t.Errorf("%q: dns %v ips %v", tt.in, h.dns, h.ips)
		}
	}
}
