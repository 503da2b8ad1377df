package module

import (
	"context"
	"errors"
	"fmt"

	"github.com/csctoken/csctoken/module/ck"
)

// toCK is the one place where errors become CK_RV values. Errors already
// carrying a ck.Error keep it; the Service sentinels map as DESIGN.md says;
// a cancelled context means C_Finalize or C_CloseSession (handled by the
// caller, which knows which) and is CKR_FUNCTION_CANCELED here; a deadline
// is a device error; anything else is CKR_FUNCTION_FAILED.
func toCK(err error) ck.Error {
	if err == nil {
		return ck.CKR_OK
	}
	var e ck.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrPINIncorrect):
		return ck.CKR_PIN_INCORRECT
	case errors.Is(err, ErrPINLocked):
		return ck.CKR_PIN_LOCKED
	case errors.Is(err, ErrNotLoggedIn), errors.Is(err, ErrSADInvalid):
		return ck.CKR_USER_NOT_LOGGED_IN
	case errors.Is(err, ErrCanceled), errors.Is(err, context.Canceled):
		return ck.CKR_FUNCTION_CANCELED
	case errors.Is(err, ErrRejected):
		return ck.CKR_FUNCTION_REJECTED
	case errors.Is(err, ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
		return ck.CKR_DEVICE_ERROR
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
