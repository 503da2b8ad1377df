//go:build cgo

package p11

// How library errors become keystore errors.

import (
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/miekg/pkcs11"
)

// Return values that map to keystore errors, per operation.
var (
	signErrors = map[pkcs11.Error]error{
		pkcs11.CKR_DATA_LEN_RANGE:             keystore.ErrInvalidDigest,
		pkcs11.CKR_DATA_INVALID:               keystore.ErrInvalidDigest,
		pkcs11.CKR_MECHANISM_INVALID:          keystore.ErrInvalidDigest,
		pkcs11.CKR_MECHANISM_PARAM_INVALID:    keystore.ErrInvalidDigest,
		pkcs11.CKR_KEY_TYPE_INCONSISTENT:      keystore.ErrInvalidDigest,
		pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED: keystore.ErrInvalidDigest,
		pkcs11.CKR_KEY_HANDLE_INVALID:         keystore.ErrKeyNotFound,
		pkcs11.CKR_OBJECT_HANDLE_INVALID:      keystore.ErrKeyNotFound,
	}
	genErrors = map[pkcs11.Error]error{
		pkcs11.CKR_MECHANISM_INVALID:       keystore.ErrUnsupportedKey,
		pkcs11.CKR_MECHANISM_PARAM_INVALID: keystore.ErrUnsupportedKey,
		pkcs11.CKR_ATTRIBUTE_VALUE_INVALID: keystore.ErrUnsupportedKey,
		pkcs11.CKR_TEMPLATE_INCONSISTENT:   keystore.ErrUnsupportedKey,
		pkcs11.CKR_KEY_SIZE_RANGE:          keystore.ErrUnsupportedKey,
		pkcs11.CKR_CURVE_NOT_SUPPORTED:     keystore.ErrUnsupportedKey,
	}
)

// mapError wraps a library error, adding the keystore error it stands for
// (if any in table) so that both errors.Is(err, keystore.ErrX) and
// errors.As(err, &pkcs11.Error) work.
func mapError(op string, err error, table map[pkcs11.Error]error) error {
	var ck pkcs11.Error
	if errors.As(err, &ck) {
		if kerr, ok := table[ck]; ok {
			return fmt.Errorf("p11: %s: %w: %w", op, kerr, err)
		}
	}
	return fmt.Errorf("p11: %s: %w", op, err)
}

// loginError explains a failed C_Login.
func loginError(label string, err error) error {
	var ck pkcs11.Error
	if errors.As(err, &ck) {
		switch ck {
		case pkcs11.CKR_PIN_INCORRECT:
			return fmt.Errorf("p11: login to token %q: wrong PIN: %w", label, err)
		case pkcs11.CKR_PIN_LOCKED:
			return fmt.Errorf("p11: login to token %q: the user PIN is locked (the security officer must reset it): %w", label, err)
		case pkcs11.CKR_USER_PIN_NOT_INITIALIZED:
			return fmt.Errorf("p11: login to token %q: the token has no user PIN yet: %w", label, err)
		}
	}
	return fmt.Errorf("p11: login to token %q: %w", label, err)
}

func isStaleHandle(err error) bool {
	return errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)) ||
		errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID))
}

// lostErrors are the return values that say the token (or the library's
// view of it) is gone: every session and object handle is then suspect,
// and the token is re-opened.
var lostErrors = []pkcs11.Error{
	pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
	pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_ERROR,
	pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
	pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
}

// errTokenGone marks a loss this package concluded itself (the token no
// longer describes itself, a key vanished with it, the library was
// re-initialised by another Backend).
var errTokenGone = errors.New("token gone")

// isTokenLost tells whether err says the token is gone.
func isTokenLost(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errTokenGone) {
		return true
	}
	for _, rv := range lostErrors {
		if errors.Is(err, rv) {
			return true
		}
	}
	return false
}

// unavailableError is what operations return while the token is away: it
// wraps keystore.ErrUnavailable and the cause (a pkcs11.Error stays
// reachable with errors.As), and tells when the next re-open attempt is.
type unavailableError struct {
	token string
	cause error
	retry time.Duration
}

func (e *unavailableError) Error() string {
	if e.cause == nil {
		return fmt.Sprintf("p11: token %q unavailable, re-opening it", e.token)
	}
	return fmt.Sprintf("p11: token %q unavailable, re-opening it: %v", e.token, e.cause)
}

func (e *unavailableError) Unwrap() []error {
	if e.cause == nil {
		return []error{keystore.ErrUnavailable}
	}
	return []error{keystore.ErrUnavailable, e.cause}
}

// RetryAfter is the wait until the next re-open attempt, at least a second.
func (e *unavailableError) RetryAfter() time.Duration { return max(e.retry, time.Second) }
