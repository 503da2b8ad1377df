package cscservice

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/module"
)

// mapErr wraps a client error with the module sentinel it stands for (both
// stay reachable with errors.Is). op names the CSC method.
func (s *Service) mapErr(op string, err error) (mapped error) {
	if err == nil {
		return nil
	}
	defer func() { s.recordFailure(mapped) }() // lastfailure.go
	var ce *cscclient.Error
	switch {
	case errors.Is(err, context.Canceled):
		// C_Finalize or C_CloseSession: the module knows which.
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, cscclient.ErrOutcomeUnknown):
		// signHash on a node that failed after it got the request, then
		// refused by the next node (the SAD used up there): the first node
		// may have signed, but the signature is lost. Not ErrSADInvalid:
		// the user did nothing wrong, and the next C_Sign authorizes anew.
		return fmt.Errorf("%s: %w at %s: a node failed while it had the request and the next one refused it: %w",
			op, module.ErrUnreachable, s.cfg.URL, err)
	case errors.Is(err, cscclient.ErrCredentialLocked):
		return fmt.Errorf("%s: %w: %w", op, module.ErrPINLocked, err)
	case errors.Is(err, cscclient.ErrWrongPIN):
		n := -1
		if errors.As(err, &ce) {
			n = ce.RemainingAttempts()
		}
		return &module.PINError{RemainingAttempts: n, Err: fmt.Errorf("%s: %w", op, err)}
	case errors.Is(err, cscclient.ErrInvalidSAD):
		return fmt.Errorf("%s: %w: %w", op, module.ErrSADInvalid, err)
	case errors.Is(err, cscclient.ErrLoginRequired), errors.Is(err, cscclient.ErrInvalidToken),
		errors.Is(err, cscclient.ErrExpiredToken), errors.Is(err, cscclient.ErrAuthentication):
		who := ""
		if s.cfg.Username != "" {
			who = fmt.Sprintf(" as %q", s.cfg.Username)
		}
		return fmt.Errorf("%s: %w%s at %s (run `csctoken login --service %s`): %w",
			op, module.ErrNotLoggedIn, who, s.cfg.URL, shellQuote(s.cfg.Name), err)
	case errors.Is(err, cscclient.ErrCredentialDisabled), errors.Is(err, cscclient.ErrAccessDenied):
		return fmt.Errorf("%s: %w: %w", op, module.ErrRejected, err)
	case errors.Is(err, cscclient.ErrTLS):
		return fmt.Errorf("%s: %w: %s: %w", op, module.ErrUnreachable, TLSProblem(err, s.cfg.CAFile), err)
	case errors.Is(err, cscclient.ErrTransport), errors.Is(err, cscclient.ErrTimeout),
		errors.Is(err, cscclient.ErrServer), errors.Is(err, cscclient.ErrUnavailable),
		errors.Is(err, cscclient.ErrRateLimited), errors.Is(err, cscclient.ErrBadResponse),
		errors.Is(err, cscclient.ErrResponseTooLarge), errors.Is(err, cscclient.ErrRedirect),
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w at %s: %w", op, module.ErrUnreachable, s.cfg.URL, err)
	case errors.As(err, &ce) && ce.StatusCode >= 400 && ce.StatusCode < 500 && ce.StatusCode != http.StatusNotFound:
		// invalid_request and the like: the service said no (a hash it
		// does not accept, a parameter it refuses).
		return fmt.Errorf("%s: %w: %w", op, module.ErrRejected, err)
	case errors.As(err, &ce) && ce.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w at %s (is the URL right?): %w", op, module.ErrUnreachable, s.cfg.URL, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// TLSProblem describes a certificate verification failure, naming the
// server's certificate, for people: what was presented and what to do.
func TLSProblem(err error, caFile string) string {
	var (
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		cve *tls.CertificateVerificationError
	)
	var cert *x509.Certificate
	why := "is not trusted"
	switch {
	case errors.As(err, &hn):
		cert, why = hn.Certificate, fmt.Sprintf("is not valid for %q", hn.Host)
	case errors.As(err, &ci):
		cert = ci.Cert
		switch ci.Reason {
		case x509.Expired:
			why = "is expired or not yet valid"
		default:
			why = "is not valid"
		}
	case errors.As(err, &ua):
		cert = ua.Cert
	}
	if cert == nil && errors.As(err, &cve) && len(cve.UnverifiedCertificates) > 0 {
		cert = cve.UnverifiedCertificates[0]
	}
	if errors.Is(err, cscclient.ErrPinMismatch) {
		return "the server's certificate matches no pinned key"
	}
	if cert == nil {
		return "TLS verification of the server failed"
	}
	msg := fmt.Sprintf("the server's certificate %q (issued by %q) %s", cert.Subject.String(), cert.Issuer.String(), why)
	if why == "is not trusted" {
		if caFile != "" {
			msg += fmt.Sprintf("; its issuer is not in ca_file %s nor in the system's roots", caFile)
		} else {
			msg += "; set ca_file in the config to the PEM file of its CA"
		}
	}
	return msg
}

// shellQuote quotes s for a shell command line when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/@+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
