package app

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// certFiles serves the TLS certificate of rssp.toml ([tls] cert and key)
// and reloads it on demand (SIGHUP in rssp serve): a renewed certificate
// takes effect without a restart; a reload that fails keeps the one in
// use.
type certFiles struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// load reads the files and, when they hold a certificate and its key,
// makes them the one served.
func (f *certFiles) load() error {
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	f.cur.Store(&cert)
	return nil
}

// get is tls.Config.GetCertificate.
func (f *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cur.Load(), nil
}

// ReloadTLS reads the TLS certificate and key files again; on an error
// the certificate in use stays. It returns the new certificate's expiry.
func (a *App) ReloadTLS() (string, error) {
	if a.certs == nil {
		return "", fmt.Errorf("TLS is not in use")
	}
	if err := a.certs.load(); err != nil {
		return "", err
	}
	leaf := a.certs.cur.Load().Leaf
	if leaf == nil {
		return "", nil
	}
	return leaf.NotAfter.UTC().Format("2006-01-02"), nil
}
