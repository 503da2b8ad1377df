package oauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
)

// Failures of the browser round trip that are not OAuth2 error responses.
var (
	// ErrTimeout: the browser did not come back to the redirect URI within
	// Config.Timeout (the user walked away, or the page was closed).
	ErrTimeout = errors.New("oauth: no answer from the browser in time")
	// ErrStateMismatch: the redirect carried another state than the one
	// sent (RFC 6749 §10.12): a response to another request, or a forged
	// one. The flow is abandoned.
	ErrStateMismatch = errors.New("oauth: state mismatch in the authorization response")
	// ErrIssuerMismatch: the redirect carried another iss than the
	// authorization server's, or none where the server promises one
	// (RFC 9207 §2.4). The flow is abandoned.
	ErrIssuerMismatch = errors.New("oauth: iss mismatch in the authorization response")
	// ErrNoBrowser: the browser could not be opened and the URL could not
	// be shown to the user (no Config.Out or Config.OnURL).
	ErrNoBrowser = errors.New("oauth: cannot open a browser")
)

// Endpoint names of Error.Endpoint.
const (
	EndpointMetadata      = "metadata"         // RFC 8414 discovery
	EndpointAuthorize     = "authorize"        // the redirect back from oauth2/authorize
	EndpointPushAuthorize = "pushed_authorize" // oauth2/pushed_authorize (RFC 9126)
	EndpointToken         = "token"            // oauth2/token
	EndpointRevoke        = "revoke"           // oauth2/revoke (RFC 7009)
	EndpointAbandon       = "abandon"          // oauth2/abandon (rssp)
)

// Error is an OAuth2 error response: a JSON error body of an endpoint
// (RFC 6749 §5.2, RFC 9126 §2.3, RFC 7009 §2.2.1) or an error sent back to
// the redirect URI (RFC 6749 §4.1.2.1), or a failure to reach an endpoint
// or to read its answer. errors.Is matches the kinds of package cscclient:
//
//	access_denied                                  cscclient.ErrAccessDenied
//	invalid_grant, invalid_client, unauthorized_client  cscclient.ErrAuthentication
//	invalid_token                                  cscclient.ErrInvalidToken
//	expired_token                                  cscclient.ErrExpiredToken
//	temporarily_unavailable, HTTP 503              cscclient.ErrUnavailable
//	server_error, other 5xx                        cscclient.ErrServer
//	HTTP 429                                       cscclient.ErrRateLimited
//	no response                                    cscclient.ErrTransport (and ErrTimeout, ErrTLS)
//	an answer that breaks the protocol             cscclient.ErrBadResponse
//
// so that a cscclient.Session treats a refused refresh token as such and
// asks for a new login.
type Error struct {
	// Endpoint is one of the Endpoint* names.
	Endpoint string
	// StatusCode is the HTTP status; 0 for a redirect error or when no
	// response came.
	StatusCode int
	// Code, Description and URI are error, error_description and
	// error_uri.
	Code, Description, URI string
	// Err is the cause, if any (a network, TLS or JSON error).
	Err error

	bad bool // the answer broke the protocol
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("oauth ")
	b.WriteString(e.Endpoint)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.URI != "" {
		b.WriteString(" (")
		b.WriteString(e.URI)
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether e is of the kind target (see Error).
func (e *Error) Is(target error) bool {
	for _, k := range e.kinds() {
		if k == target {
			return true
		}
	}
	return false
}

func (e *Error) kinds() []error {
	var out []error
	switch e.Code {
	case csc.ErrAccessDenied:
		out = append(out, cscclient.ErrAccessDenied)
	case csc.ErrInvalidGrant, csc.ErrInvalidClient, csc.ErrUnauthorizedClient:
		out = append(out, cscclient.ErrAuthentication)
	case csc.ErrInvalidToken:
		out = append(out, cscclient.ErrInvalidToken)
	case csc.ErrExpiredToken:
		out = append(out, cscclient.ErrExpiredToken)
	case csc.ErrTemporarilyUnavailable:
		out = append(out, cscclient.ErrUnavailable)
	case csc.ErrServerError:
		out = append(out, cscclient.ErrServer)
	}
	switch {
	case e.StatusCode == http.StatusTooManyRequests:
		out = append(out, cscclient.ErrRateLimited)
	case e.StatusCode == http.StatusServiceUnavailable:
		out = append(out, cscclient.ErrUnavailable)
	case e.StatusCode >= 500 && len(out) == 0:
		out = append(out, cscclient.ErrServer)
	}
	if e.bad {
		out = append(out, cscclient.ErrBadResponse)
	}
	if e.StatusCode == 0 && e.Code == "" && e.Err != nil && !e.bad {
		out = append(out, cscclient.ErrTransport)
		var ne net.Error
		if errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout()) {
			out = append(out, cscclient.ErrTimeout)
		}
		if isTLSError(e.Err) {
			out = append(out, cscclient.ErrTLS)
		}
	}
	return out
}

func isTLSError(err error) bool {
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ad tls.AlertError
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) ||
		errors.As(err, &ad) || errors.Is(err, cscclient.ErrPinMismatch)
}

// badResponse is an answer that does not follow the protocol.
func badResponse(endpoint string, status int, format string, args ...any) *Error {
	return &Error{Endpoint: endpoint, StatusCode: status, Err: fmt.Errorf(format, args...), bad: true}
}

// maxField bounds the error fields kept from an answer.
const maxField = 512

// clip keeps at most maxField bytes of printable text of s.
func clip(s string) string {
	if len(s) > maxField {
		s = s[:maxField]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '?'
		}
		return r
	}, s)
}

func invalidArgument(format string, args ...any) error {
	return fmt.Errorf("%w: oauth: %s", cscclient.ErrInvalidArgument, fmt.Sprintf(format, args...))
}
