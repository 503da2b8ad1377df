package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
)

// statusOptions are the flags of csctoken status.
type statusOptions struct{ service string }

// cmdStatus shows, per service: reachability, the login and its token,
// where the token is kept, and the credentials with their certificates'
// validity.
func (c *cli) cmdStatus(o statusOptions) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	svcs, err := pick(cfg, o.service)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "config: %s\n", cfg.Path)
	bad := 0
	for _, sc := range svcs {
		fmt.Fprintln(c.stdout)
		if !c.status(sc) {
			bad++
		}
		c.consentStatus(cfg.CacheDir, sc)
	}
	if bad > 0 {
		return silentError{fmt.Sprintf("%d service(s) unusable, unreachable or with an expired login", bad)}
	}
	return nil
}

// status prints one service's status; false when the service is unusable
// or unreachable, or its login expired (status then exits 1).
func (c *cli) status(sc config.Service) (ok bool) {
	out := c.stdout
	fmt.Fprintf(out, "service %q: %s (%s)\n", sc.Name, sc.URL, authSummary(sc))
	if len(sc.FailoverURLs) > 0 {
		fmt.Fprintf(out, "  failover: %s\n", strings.Join(sc.FailoverURLs, ", "))
	}
	s, err := c.service(sc)
	if err != nil {
		fmt.Fprintf(out, "  unusable: %v\n", err)
		return false
	}
	ctx := c.ctx
	ok = true
	if info, err := s.Info(ctx); err != nil {
		fmt.Fprintf(out, "  reachable: no: %v\n", err)
		ok = false
	} else {
		fmt.Fprintf(out, "  reachable: yes: %q, CSC %s\n", info.Name, info.Specs)
	}
	tok, err := s.TokenStatus(ctx)
	var (
		creds   []module.Credential
		listErr error
	)
	if err == nil && tok != nil {
		creds, listErr = s.ListCredentials(ctx)
		if t, err := s.TokenStatus(ctx); err == nil && t != nil {
			tok = t // refreshed by the listing
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(out, "  login: unknown: %v\n", err)
	case tok == nil:
		fmt.Fprintf(out, "  login: not logged in (run `%s`)\n", loginHint(sc.Name))
	case errors.Is(listErr, module.ErrNotLoggedIn):
		fmt.Fprintf(out, "  login: %s, expired or revoked (run `%s`)\n", loginWho(sc), loginHint(sc.Name))
		ok = false
	default:
		fmt.Fprintf(out, "  login: %s; %s\n", loginWho(sc), tokenLife(tok))
	}
	fmt.Fprintf(out, "  token kept in: %s\n", c.tokenPlace(ctx, s))
	if f, err := cscservice.ReadLastFailure(sc); err == nil && f != nil {
		fmt.Fprintf(out, "  last failure: %s\n", describeFailure(f))
	}
	switch {
	case tok == nil || errors.Is(listErr, module.ErrNotLoggedIn):
		return ok
	case listErr != nil:
		fmt.Fprintf(out, "  credentials: %v\n", listErr)
		return false
	}
	fmt.Fprintf(out, "  credentials: %d\n", len(creds))
	now := time.Now()
	for _, cr := range creds {
		cert := leaf(cr)
		validity := "no certificate"
		if cert != nil {
			validity = certValidity(cert, now)
		}
		state := ""
		if !cr.Enabled {
			state = " (disabled)"
		}
		fmt.Fprintf(out, "    %s %s%s: %s\n", cr.ID, quoteOr(cr.Description, ""), state, validity)
	}
	return ok
}

// describeFailure says when a service last failed, what and what to do.
func describeFailure(f *cscservice.LastFailure) string {
	s := f.Time.Local().Format(time.DateTime) + ": " + f.What
	if f.ToDo != "" {
		s += "; what to do: " + f.ToDo
	}
	return s
}

// authSummary says how the service authenticates the user and how
// credentials are authorized.
func authSummary(sc config.Service) string {
	var s string
	switch sc.Auth {
	case config.AuthOAuth2:
		s = fmt.Sprintf("auth oauth2 in the browser, client %s", sc.ClientID)
		if sc.Username != "" {
			s += ", user " + sc.Username
		}
	default:
		s = fmt.Sprintf("auth %s, user %s", sc.Auth, orNone(sc.Username))
	}
	switch sc.CredentialAuth {
	case config.CredentialAuthBrowser:
		s += "; signatures authorized in the browser"
	default:
		s += "; signatures authorized with the PIN"
	}
	return s
}

// loginWho names the login: the user name, or the kind of login when the
// config has no user name (oauth2: the user chose the account in the
// browser).
func loginWho(sc config.Service) string {
	switch {
	case sc.Username != "":
		return sc.Username
	case sc.Auth == config.AuthOAuth2:
		return "yes (oauth2)"
	}
	return "yes"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func quoteOr(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return fmt.Sprintf("%q", s)
}

// leaf parses a credential's end-entity certificate.
func leaf(c module.Credential) *x509.Certificate {
	if len(c.Certificates) == 0 {
		return nil
	}
	cert, err := x509.ParseCertificate(c.Certificates[0])
	if err != nil {
		return nil
	}
	return cert
}

// certValidity describes a certificate's validity period at now.
func certValidity(cert *x509.Certificate, now time.Time) string {
	from, to := cert.NotBefore.Local().Format(time.DateOnly), cert.NotAfter.Local().Format(time.DateOnly)
	switch {
	case now.After(cert.NotAfter):
		return fmt.Sprintf("certificate EXPIRED on %s", to)
	case now.Before(cert.NotBefore):
		return fmt.Sprintf("certificate NOT YET VALID (from %s)", from)
	}
	days := int(cert.NotAfter.Sub(now).Hours() / 24)
	return fmt.Sprintf("certificate valid %s to %s (%d days left)", from, to, days)
}

// keyDesc names a credential's key: "RSA 2048", "EC P-256".
func keyDesc(c module.Credential, cert *x509.Certificate) string {
	if cert != nil {
		switch k := cert.PublicKey.(type) {
		case *rsa.PublicKey:
			return fmt.Sprintf("RSA %d", k.N.BitLen())
		case *ecdsa.PublicKey:
			return "EC " + k.Curve.Params().Name
		}
	}
	if c.KeyLen > 0 {
		return fmt.Sprintf("%d bits", c.KeyLen)
	}
	return "?"
}

// authDesc names how a credential is authorized, for people.
func authDesc(a module.AuthMode) string {
	switch a {
	case module.AuthPIN:
		return "PIN"
	case module.AuthNone:
		return "none"
	case module.AuthBrowser:
		return "browser"
	}
	return a.String()
}

// credentials lists one service's credentials through the adapter, as the
// module does.
func (c *cli) credentials(ctx context.Context, sc config.Service) ([]module.Credential, error) {
	s, err := c.service(sc)
	if err != nil {
		return nil, err
	}
	return s.ListCredentials(ctx)
}

// consentStatus shows the consents that a host program's C_Sign stopped
// waiting for (browser mode in Firefox): the page still open, or the
// approval kept for the program's retry.
func (c *cli) consentStatus(cacheDir string, sc config.Service) {
	notes, err := module.ConsentNotes(cacheDir, sc, time.Now())
	if err != nil {
		fmt.Fprintf(c.stdout, "  consents: %v\n", err)
	}
	for _, n := range notes {
		switch n.State {
		case "approved":
			until := ""
			if !n.Expires.IsZero() {
				until = " until " + n.Expires.Local().Format(time.TimeOnly)
			}
			fmt.Fprintf(c.stdout, "  consent: approved in the browser for credential %s, %d signature(s) kept%s for %s (pid %d): retry there (reload the page), no new consent needed\n",
				n.Credential, n.Signatures, until, n.Program, n.PID)
		default:
			fmt.Fprintf(c.stdout, "  consent: the page for credential %s is waiting for you since %s; %s (pid %d) did not wait (its connections cannot): approve it, then retry (reload the page)\n",
				n.Credential, n.Since.Local().Format(time.TimeOnly), n.Program, n.PID)
		}
	}
}
