package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/extauth"
)

// externalValidator builds the validator of the external authorization
// server's tokens ([oauth2], docs/external-as.md).
func externalValidator(c config.Config, log *slog.Logger) (*extauth.Validator, error) {
	o := c.OAuth2
	client, err := issuerClient(c)
	if err != nil {
		return nil, err
	}
	var secret string
	if o.ClientSecretFile != "" {
		b, err := os.ReadFile(c.Path(o.ClientSecretFile))
		if err != nil {
			return nil, fmt.Errorf("oauth2.client_secret_file: %w", err)
		}
		if secret = strings.TrimSpace(string(b)); secret == "" {
			return nil, errors.New("oauth2.client_secret_file is empty")
		}
	}
	return extauth.New(extauth.Config{
		Issuer: o.Issuer, Audience: o.Audience, Algorithms: o.Algorithms, JWKSURI: o.JWKSURI,
		IntrospectionEndpoint: o.IntrospectionEndpoint, ClientID: o.ClientID, ClientSecret: secret,
		Leeway: o.Leeway.Duration, KeyCacheTTL: o.KeyCacheTTL.Duration, KeyRefreshInterval: o.KeyRefreshInterval.Duration,
		IntrospectionCacheTTL: o.IntrospectionCacheTTL.Duration, IntrospectionCacheSize: o.IntrospectionCacheSize,
		HTTPClient: client, Logger: log,
	})
}

// issuerClient is the HTTP client to the external server (and Hydra's
// admin API): the system roots plus oauth2.ca_file, a 10 s timeout.
func issuerClient(c config.Config) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if f := c.OAuth2.CAFile; f != "" {
		pem, err := os.ReadFile(c.Path(f))
		if err != nil {
			return nil, fmt.Errorf("oauth2.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("oauth2.ca_file %s: no PEM certificate", f)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}
