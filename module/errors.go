package module

import (
	"context"
	"errors"
	"fmt"

	"github.com/csctoken/csctoken/module/ck"
)

// serviceErrors is the one table from the Service's errors (and the
// context's) to CK_RV; the first match wins. docs/mapping.md ("Errors")
// shows it with the CSC errors behind each line (module/cscservice's
// mapErr). Every code here is a valid answer of each function that calls
// the service (C_Login, C_Sign, C_SignFinal).
var serviceErrors = []struct {
	err error
	rv  ck.Error
}{
	{ErrPINIncorrect, ck.CKR_PIN_INCORRECT},
	{ErrPINLocked, ck.CKR_PIN_LOCKED},
	// The program logs in again (C_Login) and retries.
	{ErrNotLoggedIn, ck.CKR_USER_NOT_LOGGED_IN},
	{ErrSADInvalid, ck.CKR_USER_NOT_LOGGED_IN},
	// The user declined or let the consent page time out; a cancelled
	// context is C_Finalize or C_CloseSession (ctxErr says which).
	{ErrCanceled, ck.CKR_FUNCTION_CANCELED},
	{context.Canceled, ck.CKR_FUNCTION_CANCELED},
	// The service refused the request (HTTP 400/403: a disabled
	// credential, a parameter or hash it does not take). Not
	// CKR_FUNCTION_REJECTED, which PKCS#11 keeps for "the user rejected
	// the signature"; the reason is in the module log.
	{ErrRejected, ck.CKR_FUNCTION_FAILED},
	// Network, TLS, 5xx, 429, timeouts: try again later.
	{ErrUnreachable, ck.CKR_DEVICE_ERROR},
	{context.DeadlineExceeded, ck.CKR_DEVICE_ERROR},
}

// toCK is the one place where errors become CK_RV values. Errors already
// carrying a ck.Error keep it; the Service's errors map through
// serviceErrors; anything else is CKR_FUNCTION_FAILED.
func toCK(err error) ck.Error {
	if err == nil {
		return ck.CKR_OK
	}
	var e ck.Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range serviceErrors {
		if errors.Is(err, m.err) {
			return m.rv
		}
	}
	return ck.CKR_FUNCTION_FAILED
}

// ckErr is the error type returned by exported methods: a CK_RV plus the
// cause, so ck.RV finds the code and logs keep the reason.
type ckErr struct {
	rv    ck.Error
	cause error
}

func (e *ckErr) Error() string {
	if e.cause == nil {
		return e.rv.Error()
	}
	return fmt.Sprintf("%s: %v", e.rv.Name(), e.cause)
}

func (e *ckErr) Unwrap() []error {
	if e.cause == nil {
		return []error{e.rv}
	}
	return []error{e.rv, e.cause}
}

// As lets errors.As(err, *ck.Error) find the mapped code first, before any
// ck.Error that may sit inside the cause.
func (e *ckErr) As(target any) bool {
	if p, ok := target.(*ck.Error); ok {
		*p = e.rv
		return true
	}
	return false
}

// wrapRV returns a ckErr for err with the given code.
func wrapRV(rv ck.Error, err error) error { return &ckErr{rv: rv, cause: err} }
