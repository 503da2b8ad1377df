package cscclient

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/csctoken/csctoken/csc"
)

// Kinds of failure. Every error of a Client method is an *Error, and
// errors.Is(err, ErrX) says which of these it is (several may hold: a
// timeout is also ErrTransport).
var (
	// ErrInvalidToken: the access token was refused (invalid_token, or a
	// 401 without a more precise code).
	ErrInvalidToken = errors.New("invalid access token")
	// ErrExpiredToken: the access token expired or was revoked.
	ErrExpiredToken = errors.New("expired access token")
	// ErrAuthentication: auth/login refused the user name and password or
	// the refresh token (authentication_error, invalid_grant,
	// invalid_client).
	ErrAuthentication = errors.New("service authentication failed")
	// ErrWrongPIN: a wrong PIN, OTP or other authentication data
	// (invalid_pin, invalid_otp, invalid_authentication_data, or an
	// invalid_request whose description says so).
	ErrWrongPIN = errors.New("wrong PIN or OTP")
	// ErrCredentialLocked: the credential is locked, e.g. after too many
	// wrong PINs (credential_locked, or a description saying "locked").
	ErrCredentialLocked = errors.New("credential locked")
	// ErrCredentialDisabled: the credential is disabled.
	ErrCredentialDisabled = errors.New("credential disabled")
	// ErrInvalidSAD: the SAD is expired, used up or does not cover the
	// hashes (an invalid_request whose description names the SAD).
	ErrInvalidSAD = errors.New("invalid SAD")
	// ErrAccessDenied: the user, the authorization server or the RSSP
	// denied the request (access_denied).
	ErrAccessDenied = errors.New("access denied")
	// ErrRateLimited: HTTP 429.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable: HTTP 503 or temporarily_unavailable.
	ErrUnavailable = errors.New("service temporarily unavailable")
	// ErrServer: another 5xx or server_error.
	ErrServer = errors.New("server error")
	// ErrNotSupported: the service does not implement the method (501,
	// not_implemented), or the wire version has no such method.
	ErrNotSupported = errors.New("method not supported")
	// ErrPending: a 202 from authorizeCheck or signPolling; ask again later.
	ErrPending = errors.New("operation pending")
	// ErrBadResponse: a response that does not follow the protocol
	// (malformed JSON, wrong content type, an error inside a 200, required
	// members missing, an unexpected status).
	ErrBadResponse = errors.New("bad response")
	// ErrResponseTooLarge: the body exceeded the size limit.
	ErrResponseTooLarge = errors.New("response too large")
	// ErrRedirect: the server redirected to another origin or with a method
	// change; redirects of that kind are never followed.
	ErrRedirect = errors.New("redirect refused")
	// ErrTransport: no HTTP response (connection, TLS, timeout).
	ErrTransport = errors.New("transport failure")
	// ErrTimeout: the attempt or the call timed out.
	ErrTimeout = errors.New("timeout")
	// ErrTLS: the server's certificate was not trusted or not pinned.
	ErrTLS = errors.New("TLS verification failed")
	// ErrInvalidArgument: the call was refused locally before sending.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrLoginRequired: no valid service token and no way to get one
	// without the user.
	ErrLoginRequired = errors.New("service login required")
)

// maxExcerpt bounds Error.Body.
const maxExcerpt = 512

// Error is the error of every Client call.
type Error struct {
	// Method is the CSC method (v2 name), e.g. "signatures/signHash".
	Method string
	// StatusCode is the HTTP status; 0 when no response was received.
	StatusCode int
	// Code and Description are the CSC error and error_description.
	Code        string
	Description string
	// Body is a bounded, sanitised excerpt of the response body; empty when
	// the body could carry a secret (a 2xx of auth/login, authorize...).
	Body string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Err is the underlying cause (a net, TLS, JSON or context error), if any.
	Err error

	kinds []error // kinds set by the client, besides those of Code

	authFromSource bool // the Bearer came from the TokenSource (401 retry)
	sent           bool // the request may have reached the server
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("csc ")
	b.WriteString(e.Method)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
		if t := http.StatusText(e.StatusCode); t != "" && e.Code == "" {
			b.WriteString(" " + t)
		}
	}
	for _, k := range e.kinds {
		if k == ErrTimeout || k == ErrTLS || errors.Is(e.Err, k) {
			continue // the cause says it
		}
		b.WriteString(": ")
		b.WriteString(k.Error())
		break
	}
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	if e.Code == "" && e.Body != "" && e.StatusCode != 0 {
		b.WriteString(": body: ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether e is of the kind target (one of the ErrX of this
// package).
func (e *Error) Is(target error) bool {
	for _, k := range e.kinds {
		if k == target {
			return true
		}
	}
	for _, k := range e.codeKinds() {
		if k == target {
			return true
		}
	}
	return false
}

// remainingRe finds "2 attempts left", "1 try remaining", "retries left: 3".
// Compiled at the first use, not when the library loads.
var remainingRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)(\d+)\s+(?:attempts?|tries|try|retries|retry)\s+(?:left|remaining)|(?:attempts?|tries|retries)\s+(?:left|remaining)\s*:?\s*(\d+)`)
})

// RemainingAttempts returns how many PIN or OTP attempts the service says
// are left (from error_description, e.g. "Wrong PIN: 2 attempts left"), or
// -1 when it does not say.
func (e *Error) RemainingAttempts() int {
	m := remainingRe().FindStringSubmatch(e.Description)
	if m == nil {
		return -1
	}
	v := m[1]
	if v == "" {
		v = m[2]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// codeKinds classifies the HTTP status and the CSC error.
func (e *Error) codeKinds() []error {
	var out []error
	desc := strings.ToLower(e.Description)
	switch e.Code {
	case csc.ErrInvalidToken:
		out = append(out, ErrInvalidToken)
	case csc.ErrExpiredToken:
		out = append(out, ErrExpiredToken)
	case csc.ErrAuthenticationError, csc.ErrInvalidGrant, csc.ErrInvalidClient:
		out = append(out, ErrAuthentication)
	case csc.ErrAccessDenied:
		out = append(out, ErrAccessDenied)
	case csc.ErrCredentialLocked:
		out = append(out, ErrCredentialLocked)
	case csc.ErrCredentialDisabled:
		out = append(out, ErrCredentialDisabled)
	case csc.ErrInvalidPIN, csc.ErrInvalidOTP, csc.ErrInvalidAuthData:
		if hasWord(desc, "locked", "blocked") {
			out = append(out, ErrCredentialLocked)
		} else {
			out = append(out, ErrWrongPIN)
		}
	case csc.ErrTemporarilyUnavailable:
		out = append(out, ErrUnavailable)
	case csc.ErrServerError:
		out = append(out, ErrServer)
	case csc.ErrNotImplemented:
		out = append(out, ErrNotSupported)
	case csc.ErrAcceptedRequest:
		out = append(out, ErrPending)
	case csc.ErrInvalidRequest:
		switch {
		case hasWord(desc, "locked", "blocked"):
			out = append(out, ErrCredentialLocked)
		case hasWord(desc, "disabled"):
			out = append(out, ErrCredentialDisabled)
		case describesWrongFactor(desc):
			out = append(out, ErrWrongPIN)
		case hasWord(desc, "sad"):
			out = append(out, ErrInvalidSAD)
		}
	}
	switch {
	case e.StatusCode == http.StatusUnauthorized && len(out) == 0:
		out = append(out, ErrInvalidToken)
	case e.StatusCode == http.StatusTooManyRequests:
		out = append(out, ErrRateLimited)
	case e.StatusCode == http.StatusServiceUnavailable:
		out = append(out, ErrUnavailable)
	case e.StatusCode == http.StatusNotImplemented:
		out = append(out, ErrNotSupported)
	case e.StatusCode >= 500 && len(out) == 0:
		out = append(out, ErrServer)
	}
	return out
}

// describesWrongFactor recognises "Invalid PIN", "the OTP is wrong",
// "incorrect authentication data" and the like, but not "missing PIN" or
// "Invalid parameter hashes".
func describesWrongFactor(desc string) bool {
	if hasWord(desc, "missing", "required", "absent") {
		return false
	}
	factor := hasWord(desc, "pin", "otp", "password", "passcode", "passphrase") ||
		strings.Contains(desc, "authentication data") || strings.Contains(desc, "authdata")
	wrong := hasWord(desc, "wrong", "invalid", "incorrect", "mismatch", "failed", "bad", "not valid", "does not match")
	return factor && wrong
}

// hasWord reports whether s contains one of words as whole words.
func hasWord(s string, words ...string) bool {
	for _, w := range words {
		for i := 0; ; {
			j := strings.Index(s[i:], w)
			if j < 0 {
				break
			}
			j += i
			end := j + len(w)
			before := j == 0 || !isWordRune(s[j-1])
			after := end == len(s) || !isWordRune(s[end])
			if before && after {
				return true
			}
			i = j + 1
		}
	}
	return false
}

func isWordRune(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// excerpt returns at most maxExcerpt bytes of body as printable text.
func excerpt(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	cut := len(body) > maxExcerpt
	if cut {
		body = body[:maxExcerpt]
	}
	var b strings.Builder
	for len(body) > 0 {
		r, n := utf8.DecodeRune(body)
		body = body[n:]
		switch {
		case r == utf8.RuneError && n <= 1:
			if len(body) == 0 && cut {
				break // a rune cut in two by the bound
			}
			b.WriteByte('?')
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case !unicode.IsPrint(r):
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	if cut {
		b.WriteString("…")
	}
	return b.String()
}

// localError is an error raised before anything was sent.
func localError(method string, kind error, format string, args ...any) *Error {
	return &Error{Method: method, kinds: []error{kind}, Err: fmt.Errorf(format, args...)}
}
