package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/config"
)

// certNames are the DNS and IP names of a certificate.
func certNames(c *x509.Certificate) []string {
	return append(slices.Clone(c.DNSNames), ipStrings(c.IPAddresses)...)
}

func TestInitNames(t *testing.T) {
	host, _ := os.Hostname()
	host = strings.ToLower(host)
	tests := []struct {
		name      string
		o         InitOptions
		wantNames []string // exactly these (any order); nil: skip
		hasNames  []string // at least these
		wantURL   string
		wantOrg   string
	}{
		{"ok defaults", InitOptions{Listen: "127.0.0.1:8443"}, nil,
			[]string{"localhost", "127.0.0.1", "::1", host}, "https://127.0.0.1:8443", "csctoken RSSP"},
		{"ok all addresses with names", InitOptions{Listen: "0.0.0.0:8443", Name: "Sign", Organization: "Example Ltd",
			Hostnames: []string{"sign.example.org", "192.0.2.4"}},
			[]string{"sign.example.org", "192.0.2.4"}, nil, "https://sign.example.org:8443", "Example Ltd"},
		{"ok specific address with a name", InitOptions{Listen: "192.0.2.9:443", Hostnames: []string{"sign.example.org"}},
			[]string{"sign.example.org", "192.0.2.9"}, nil, "https://sign.example.org:443", "csctoken RSSP"},
		{"ok all addresses, machine name", InitOptions{Listen: "[::]:8443", Name: "Org Name"},
			nil, []string{"localhost", host}, "https://" + net.JoinHostPort(host, "8443"), "Org Name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rssp")
			r, err := Init(context.Background(), dir, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if r.PublicURL != tc.wantURL {
				t.Errorf("public URL %s, want %s", r.PublicURL, tc.wantURL)
			}
			cfg, err := config.Load(r.Config)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.PublicURL != tc.wantURL || cfg.CA.Organization != tc.wantOrg {
				t.Errorf("rssp.toml: public URL %s, organization %q", cfg.PublicURL, cfg.CA.Organization)
			}
			leaf, err := ca.ReadCertFile(filepath.Join(dir, ca.TLSCertFile))
			if err != nil {
				t.Fatal(err)
			}
			names := certNames(leaf)
			if tc.wantNames != nil && !sameSet(names, tc.wantNames) {
				t.Errorf("TLS names %v, want %v", names, tc.wantNames)
			}
			for _, n := range tc.hasNames {
				if !slices.Contains(names, n) {
					t.Errorf("TLS names %v lack %s", names, n)
				}
			}
			// Every certificate init wrote names the organization, and
			// none says "demo".
			pems, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
			for _, p := range pems {
				c, err := ca.ReadCertFile(p)
				if err != nil {
					continue // a key
				}
				if !slices.Equal(c.Subject.Organization, []string{tc.wantOrg}) || strings.Contains(strings.ToLower(c.Subject.String()), "demo") {
					t.Errorf("%s: subject %s", filepath.Base(p), c.Subject)
				}
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestInitOwnTLS(t *testing.T) {
	own := filepath.Join(t.TempDir(), "own")
	files, err := ca.CreateTLS(own, []string{"sign.example.org"}, "Example Ltd")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ok", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "rssp")
		r, err := Init(context.Background(), dir, InitOptions{Listen: "0.0.0.0:8443", Hostnames: []string{"sign.example.org"},
			TLSCert: files.CertPath, TLSKey: files.KeyPath})
		if err != nil {
			t.Fatal(err)
		}
		if r.TLSCA != "" || len(r.Warnings) > 0 || !slices.Equal(r.TLSNames, []string{"sign.example.org"}) {
			t.Errorf("result %+v", r)
		}
		if _, err := os.Stat(filepath.Join(dir, ca.TLSCACertFile)); err == nil {
			t.Error("a TLS CA was created beside the operator's certificate")
		}
		cfg, err := config.Load(r.Config)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Path(cfg.TLS.Cert) != files.CertPath || cfg.Path(cfg.TLS.Key) != files.KeyPath {
			t.Errorf("rssp.toml [tls] %s %s", cfg.TLS.Cert, cfg.TLS.Key)
		}
	})
	t.Run("ok warns when the certificate does not name the service", func(t *testing.T) {
		r, err := Init(context.Background(), filepath.Join(t.TempDir(), "rssp"), InitOptions{TLSCert: files.CertPath, TLSKey: files.KeyPath})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "127.0.0.1") {
			t.Errorf("warnings %q", r.Warnings)
		}
	})
	for _, tc := range []struct {
		name string
		o    InitOptions
		want string
	}{
		{"fail key without certificate", InitOptions{TLSKey: files.KeyPath}, "go together"},
		{"fail key of another certificate", InitOptions{TLSCert: files.CertPath, TLSKey: files.CAKeyPath}, "--tls-cert/--tls-key"},
		{"fail unspecified address as a name", InitOptions{Hostnames: []string{"0.0.0.0"}}, "unspecified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Init(context.Background(), filepath.Join(t.TempDir(), "rssp"), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReloadTLS: a renewed certificate is served after ReloadTLS without
// a restart; a broken one is refused and the previous one stays.
func TestReloadTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rssp")
	r, err := Init(context.Background(), dir, InitOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(r.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ln, err := a.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	served := func() *x509.Certificate {
		t.Helper()
		d := &net.Dialer{Timeout: 5 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	first := served()
	renewed, err := ca.ReissueTLS(dir, []string{"127.0.0.1", "renewed.example"})
	if err != nil {
		t.Fatal(err)
	}
	if served().SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("the new certificate was served before the reload")
	}
	if _, err := a.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := served(); !got.Equal(renewed.Certificate.Leaf) {
		t.Fatalf("after reload: serial %v, want %v", got.SerialNumber, renewed.Certificate.Leaf.SerialNumber)
	}
	if err := os.WriteFile(filepath.Join(dir, ca.TLSKeyFile), []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReloadTLS(); err == nil {
		t.Fatal("a broken key was reloaded")
	}
	if got := served(); !got.Equal(renewed.Certificate.Leaf) {
		t.Fatal("a failed reload changed the certificate served")
	}
}

// TestStoreSynchronous: store.synchronous in rssp.toml reaches the SQLite
// file's connections, and "normal" is announced by a warning at start.
func TestStoreSynchronous(t *testing.T) {
	for _, tt := range []struct {
		name     string
		line     string // added under [store]
		want     int    // PRAGMA synchronous: 1 NORMAL, 2 FULL
		wantWarn bool
	}{
		{"default", "", 2, false},
		{"full", "synchronous = \"full\"\n", 2, false},
		{"normal", "synchronous = \"normal\"\n", 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rssp")
			r, err := Init(context.Background(), dir, InitOptions{Listen: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(r.Config)
			if err != nil {
				t.Fatal(err)
			}
			const driver = "driver = \"sqlite\"\n"
			if !strings.Contains(string(b), driver) {
				t.Fatalf("%s has no %q", r.Config, driver)
			}
			if err := os.WriteFile(r.Config, []byte(strings.Replace(string(b), driver, driver+tt.line, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(r.Config)
			if err != nil {
				t.Fatal(err)
			}
			var logs strings.Builder
			a, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			var got int
			if err := a.sqlite.SQL().QueryRow("PRAGMA synchronous").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA synchronous = %d, want %d", got, tt.want)
			}
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "store.synchronous")
			if warned != tt.wantWarn {
				t.Errorf("warning logged: %v, want %v; log:\n%s", warned, tt.wantWarn, logs.String())
			}
		})
	}
}
