package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/sealer"
	"github.com/csctoken/csctoken/rssp/store/sqlite"
	"github.com/csctoken/csctoken/rssp/tsa"
)

// InitOptions are the choices of `rssp init`.
type InitOptions struct {
	Listen string // default 127.0.0.1:8443
	Name   string // service name, default "csctoken RSSP"
	// PKCS#11 backend (all three, or none for the software keystore).
	PKCS11Module, PKCS11Token, PKCS11PINFile string
}

// InitResult lists what Init wrote.
type InitResult struct {
	Config, Database, KEK, TLSCA, CARoot string
}

// Init writes a complete default setup into dir: key-encryption key,
// credential CA, TSA, TLS CA and server certificate, database and rssp.toml.
// It refuses to touch a directory that already holds an rssp.toml.
func Init(ctx context.Context, dir string, o InitOptions) (InitResult, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8443"
	}
	if o.Name == "" {
		o.Name = "csctoken RSSP"
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return InitResult{}, fmt.Errorf("--listen %q: %w", o.Listen, err)
	}
	p11 := o.PKCS11Module != "" || o.PKCS11Token != "" || o.PKCS11PINFile != ""
	if p11 && (o.PKCS11Module == "" || o.PKCS11Token == "" || o.PKCS11PINFile == "") {
		return InitResult{}, errors.New("the pkcs11 backend needs --pkcs11-module, --pkcs11-token and --pkcs11-pin-file")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return InitResult{}, err
	}
	// An existing directory too: it will hold the KEK and private keys.
	if err := os.Chmod(dir, 0o700); err != nil {
		return InitResult{}, err
	}
	cfgPath := filepath.Join(dir, "rssp.toml")
	if _, err := os.Stat(cfgPath); err == nil {
		return InitResult{}, fmt.Errorf("%s already exists: refusing to overwrite a setup", cfgPath)
	}
	r := InitResult{
		Config: cfgPath, Database: filepath.Join(dir, "rssp.db"), KEK: filepath.Join(dir, "kek"),
		TLSCA: filepath.Join(dir, ca.TLSCACertFile), CARoot: filepath.Join(dir, "ca-root.pem"),
	}
	if _, err := sealer.NewKEKFile(r.KEK); err != nil {
		return r, fmt.Errorf("key-encryption key: %w", err)
	}
	authority, err := ca.Create(dir, o.Name)
	if err != nil {
		return r, fmt.Errorf("credential CA: %w", err)
	}
	if _, err := tsa.Create(dir, authority, o.Name); err != nil {
		return r, fmt.Errorf("TSA: %w", err)
	}
	hosts := append([]string(nil), ca.DefaultTLSHosts...)
	if host != "" && host != "0.0.0.0" && host != "::" && !contains(hosts, host) {
		hosts = append(hosts, host)
	}
	if _, err := ca.CreateTLS(dir, hosts); err != nil {
		return r, fmt.Errorf("TLS certificate: %w", err)
	}
	db, err := sqlite.Open(ctx, r.Database)
	if err != nil {
		return r, fmt.Errorf("database: %w", err)
	}
	db.Close()

	var b strings.Builder
	fmt.Fprintf(&b, `# rssp.toml — written by rssp init. Paths are relative to this file.
# Reference: README.md ("The RSSP") and rssp/config/config.go.
listen = %q
name = %q

[tls]
cert = "tls-cert.pem"
key = "tls-key.pem"

[database]
driver = "sqlite"
path = "rssp.db"

[keystore]
# The key-encryption key seals software keys and TOTP seeds. $RSSP_KEK
# (base64) overrides the file.
kek_file = "kek"
kek_env = "RSSP_KEK"
`, o.Listen, o.Name)
	if p11 {
		fmt.Fprintf(&b, `backend = "pkcs11"

[keystore.pkcs11]
module = %q
token = %q
pin_file = %q
`, o.PKCS11Module, o.PKCS11Token, abs(o.PKCS11PINFile))
	} else {
		b.WriteString("backend = \"soft\"\n")
	}
	b.WriteString(`
[ca]
dir = "."

[security]
pin_retries = 5
access_token_ttl = "1h"
refresh_token_ttl = "720h"
sad_ttl = "5m"
max_hashes = 100
max_body_bytes = 1048576

[log]
level = "info"
format = "text"
`)
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		return r, err
	}
	return r, nil
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
