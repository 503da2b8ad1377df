package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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
	// Organization is the O of the CAs', the TSA's, the TLS and the
	// credential certificates (default: Name).
	Organization string
	// Hostnames are the DNS names and IP addresses clients reach the
	// service by, for its TLS certificate; the first is the host of the
	// public URL when Listen's is unspecified. Default: DefaultHostnames.
	Hostnames []string
	// TLSCert and TLSKey are the operator's own certificate (chain) and
	// key (PEM): no TLS CA is created, rssp.toml points at them.
	TLSCert, TLSKey string
	// PKCS#11 backend (all three, or none for the software keystore).
	PKCS11Module, PKCS11Token, PKCS11PINFile string
}

// InitResult lists what Init wrote.
type InitResult struct {
	Config, Database, KEK, CARoot string
	// TLSCA is the trust root clients need ("" with the operator's own
	// certificate), TLSNames the names in the TLS certificate.
	TLSCA    string
	TLSNames []string
	// PublicURL is the base URL clients use (CSC under /csc/v2).
	PublicURL string
	// Warnings are problems of the setup worth fixing (it works otherwise).
	Warnings []string
}

// DefaultHostnames are the TLS names of a setup listening on listen: the
// loopback names, the listen address when it is a specific one, and the
// machine's host name.
func DefaultHostnames(listen string) []string {
	hosts := append([]string(nil), ca.DefaultTLSHosts...)
	if h, _, err := net.SplitHostPort(listen); err == nil && !unspecified(h) && !slices.Contains(hosts, h) {
		hosts = append(hosts, h)
	}
	if h, err := os.Hostname(); err == nil && h != "" && !slices.Contains(hosts, strings.ToLower(h)) {
		hosts = append(hosts, strings.ToLower(h))
	}
	return hosts
}

func unspecified(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
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
	if o.Organization == "" {
		o.Organization = o.Name
	}
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return InitResult{}, fmt.Errorf("--listen %q: %w", o.Listen, err)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return InitResult{}, errors.New("--tls-cert and --tls-key go together")
	}
	var hosts []string
	switch {
	case len(o.Hostnames) > 0:
		hosts = append(hosts, o.Hostnames...)
		if !unspecified(host) && !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	default:
		hosts = DefaultHostnames(o.Listen)
	}
	publicURL := ""
	switch {
	case len(o.Hostnames) > 0 && (unspecified(host) || o.Hostnames[0] != host):
		publicURL = "https://" + net.JoinHostPort(strings.Trim(o.Hostnames[0], "[]"), port)
	case unspecified(host):
		publicURL = "https://" + net.JoinHostPort(hosts[len(hosts)-1], port)
	}
	if o.TLSCert != "" {
		o.TLSCert, o.TLSKey = abs(o.TLSCert), abs(o.TLSKey)
		if _, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey); err != nil {
			return InitResult{}, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
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
		CARoot: filepath.Join(dir, "ca-root.pem"), PublicURL: publicURL,
	}
	if r.PublicURL == "" {
		r.PublicURL = "https://" + o.Listen
	}
	if _, err := sealer.NewKEKFile(r.KEK); err != nil {
		return r, fmt.Errorf("key-encryption key: %w", err)
	}
	authority, err := ca.Create(dir, o.Name, o.Organization)
	if err != nil {
		return r, fmt.Errorf("credential CA: %w", err)
	}
	if _, err := tsa.Create(dir, authority, o.Name, o.Organization); err != nil {
		return r, fmt.Errorf("TSA: %w", err)
	}
	tlsCert, tlsKey := ca.TLSCertFile, ca.TLSKeyFile
	if o.TLSCert != "" {
		tlsCert, tlsKey = o.TLSCert, o.TLSKey
		leaf, err := ca.ReadCertFile(o.TLSCert)
		if err != nil {
			return r, fmt.Errorf("--tls-cert: %w", err)
		}
		r.TLSNames = append(leaf.DNSNames, ipStrings(leaf.IPAddresses)...)
		if u, err := url.Parse(r.PublicURL); err == nil {
			if err := leaf.VerifyHostname(u.Hostname()); err != nil {
				r.Warnings = append(r.Warnings, fmt.Sprintf("--tls-cert does not name %s, the host of the service URL: give --hostname NAME (a name of the certificate)", u.Hostname()))
			}
		}
	} else {
		files, err := ca.CreateTLS(dir, hosts, o.Organization)
		if err != nil {
			return r, fmt.Errorf("TLS certificate: %w", err)
		}
		r.TLSCA = files.CACertPath
		r.TLSNames = append(files.Certificate.Leaf.DNSNames, ipStrings(files.Certificate.Leaf.IPAddresses)...)
	}
	db, err := sqlite.Open(ctx, r.Database)
	if err != nil {
		return r, fmt.Errorf("database: %w", err)
	}
	db.Close()

	var b strings.Builder
	fmt.Fprintf(&b, `# rssp.toml — written by rssp init. Paths are relative to this file.
# Reference: docs/configuration.md.
listen = %q
name = %q
%s
[tls]
# Reloaded on SIGHUP (replace the files, then: kill -HUP PID).
cert = %q
key = %q

[store]
driver = "sqlite"
path = "rssp.db"

[keystore]
# The key-encryption key seals software keys and TOTP seeds. $RSSP_KEK
# (base64) overrides the file.
kek_file = "kek"
kek_env = "RSSP_KEK"
`, o.Listen, o.Name, publicURLLine(publicURL), tlsCert, tlsKey)
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
organization = ` + fmt.Sprintf("%q", o.Organization) + `

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

func publicURLLine(u string) string {
	if u == "" {
		return ""
	}
	return fmt.Sprintf("public_url = %q\n", u)
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
