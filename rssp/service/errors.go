package service

import (
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/store"
)

// Kinds of failure. Every error the service returns wraps one of them (or is
// an unexpected internal error); the HTTP layer maps each kind to a CSC
// error code and status in one place (rssp/server).
var (
	ErrInvalidRequest = errors.New("invalid request")       // 400 invalid_request
	ErrInvalidToken   = errors.New("invalid token")         // 401 invalid_token
	ErrExpiredToken   = errors.New("expired token")         // 401 expired_token
	ErrAuthentication = errors.New("authentication failed") // 400 authentication_error
	ErrInvalidPIN     = errors.New("invalid PIN")           // 400 invalid_pin
	ErrInvalidOTP     = errors.New("invalid OTP")           // 400 invalid_otp
	ErrLocked         = errors.New("credential locked")     // 400 credential_locked
	ErrDisabled       = errors.New("credential disabled")   // 400 credential_disabled
	ErrAccessDenied   = errors.New("access denied")         // 403 access_denied
	ErrNotImplemented = errors.New("not implemented")       // 501
	// ErrThrottled: too many wrong passwords or client secrets lately (429
	// with Retry-After, Problem.RetryAfter).
	ErrThrottled = errors.New("too many failed attempts")
	// ErrUnavailable: the service is busy or out of a resource (503 with
	// Retry-After): every password-hashing slot taken, the disk full.
	ErrUnavailable = errors.New("temporarily unavailable")
)

// Problem is a failure with a description safe to show the client.
type Problem struct {
	Kind        error  // one of the Err* kinds above
	Description string // for error_description: no secrets
	Err         error  // optional cause, logged, never sent
	// RetryAfter, when set, is sent as Retry-After (ErrThrottled,
	// ErrUnavailable).
	RetryAfter time.Duration
}

func (p *Problem) Error() string {
	if p.Err != nil {
		return fmt.Sprintf("%v: %s: %v", p.Kind, p.Description, p.Err)
	}
	return fmt.Sprintf("%v: %s", p.Kind, p.Description)
}

// Unwrap lets errors.Is find the kind and the cause.
func (p *Problem) Unwrap() []error {
	if p.Err != nil {
		return []error{p.Kind, p.Err}
	}
	return []error{p.Kind}
}

// RetryAfter is how long a client should wait before retrying after err
// (a 429 or 503 answer): the Problem's RetryAfter, 30 s for a full disk,
// the key store's hint when it is unavailable (its next attempt to reach
// the HSM), else 1 s. The HTTP layers send it as Retry-After.
func RetryAfter(err error) time.Duration {
	var p *Problem
	switch {
	case errors.As(err, &p) && p.RetryAfter > 0:
		return p.RetryAfter
	case errors.Is(err, store.ErrFull):
		return 30 * time.Second
	}
	if d, ok := keystore.RetryAfter(err); ok && d > 0 {
		return d
	}
	return time.Second
}

func fail(kind error, format string, args ...any) error {
	return &Problem{Kind: kind, Description: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return fail(ErrInvalidRequest, format, args...)
}

// Fail returns a failure of one of the kinds with a description safe to
// show the client (for the packages built on the service, such as
// rssp/authserver, whose kinds are its own).
func Fail(kind error, format string, args ...any) error { return fail(kind, format, args...) }
