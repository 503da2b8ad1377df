package module

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/csctoken/csctoken/module/objects"
)

// Service is the module's view of one CSC remote signing service. The CSC
// client (cscclient) satisfies it through an adapter; tests use a fake.
//
// Implementations must be safe for concurrent use, honour ctx (the module
// cancels it on C_Finalize, C_CloseSession and timeouts) and report failures
// by wrapping the sentinel errors below (ErrPINIncorrect, ErrUnreachable,
// ...) with %w so the module can map them to CK_RV.
type Service interface {
	// ListCredentials returns the user's credentials with their chains
	// (credentials/list + credentials/info with certificates=chain,
	// certInfo, authInfo). It must not open a browser: without a usable
	// service token it fails with ErrNotLoggedIn.
	ListCredentials(ctx context.Context) ([]Credential, error)

	// Login authenticates to the service (auth/login or OAuth2). It is
	// silent when a stored token still works or can be refreshed; with
	// interactive it may open the system browser, otherwise it fails with
	// ErrNotLoggedIn when user interaction would be needed.
	Login(ctx context.Context, interactive bool) error

	// Authorize runs credentials/authorize (explicit mode) with req.PIN as
	// the credential's factor and returns the SAD.
	Authorize(ctx context.Context, req AuthorizeRequest) (SAD, error)

	// AuthorizeInBrowser authorizes a credential on the service's consent
	// page (OAuth2 "credential" scope with the hashes in the request) and
	// returns the credential token as the SAD. ErrCanceled when the user
	// declines or the page times out.
	AuthorizeInBrowser(ctx context.Context, req AuthorizeRequest) (SAD, error)

	// SignHash runs signatures/signHash and returns one signature per hash,
	// in order. ECDSA signatures may be DER or raw r||s. ErrSADInvalid
	// when the service rejects the SAD (expired, used up).
	SignHash(ctx context.Context, req SignRequest) ([][]byte, error)
}

// AuthMode says how a credential's authorization factors are collected
// (defined in package objects with the rest of the credential model).
type AuthMode = objects.AuthMode

// The authorization modes; see objects.AuthPIN and its siblings.
const (
	AuthPIN     = objects.AuthPIN
	AuthNone    = objects.AuthNone
	AuthBrowser = objects.AuthBrowser
)

// Credential is one CSC credential as the module needs it (defined in
// package objects, which builds the PKCS#11 objects from it).
type Credential = objects.Credential

// AuthorizeRequest is the input of credentials/authorize. It carries what
// the module knows of the credential (from the listing or its cache), so
// that a Service needs no state of its own to translate it.
type AuthorizeRequest struct {
	CredentialID  string
	NumSignatures int
	// Hashes binds the SAD to these hashes (SCAL2; optional for SCAL1).
	Hashes     [][]byte
	HashAlgOID string
	// PIN is the credential PIN; nil for AuthNone and browser mode. It is
	// the caller's copy, wiped when the call returns: a Service must not
	// keep it.
	PIN []byte
	// PINID is the ID of the PIN's authentication object
	// (Credential.PINID); empty when unknown.
	PINID string
	// KeyLabel is the key's CKA_LABEL (the credential's description, else
	// its ID), which consent pages show.
	KeyLabel string
	// Description is shown to the user by some services.
	Description string
}

// authorizeRequest is the request for n signatures with c, with what the
// module knows of c.
func authorizeRequest(c Credential, n int) AuthorizeRequest {
	label := strings.TrimSpace(c.Description)
	if label == "" {
		label = c.ID
	}
	return AuthorizeRequest{CredentialID: c.ID, NumSignatures: n, PINID: c.PINID, KeyLabel: label}
}

// SAD is a signature activation data value (or, in browser mode, the
// credential token) with what the module knows about its lifetime.
type SAD struct {
	Value string
	// ExpiresAt is zero when unknown.
	ExpiresAt time.Time
	// Remaining is how many signatures it still covers.
	Remaining int
}

// SignRequest is the input of signatures/signHash.
type SignRequest struct {
	CredentialID string
	SAD          SAD
	Hashes       [][]byte
	// HashAlgOID is empty when SignAlgOID implies the hash.
	HashAlgOID    string
	SignAlgOID    string
	SignAlgParams []byte // DER, e.g. RSASSA-PSS-params; nil when none
}

// Sentinel errors a Service wraps. The module maps them to CK_RV in one
// place (toCK).
var (
	// ErrPINIncorrect: the credential's authorization factor was wrong.
	// Wrap it in a *PINError to report the remaining attempts.
	ErrPINIncorrect = errors.New("credential PIN incorrect")
	// ErrPINLocked: the credential is locked after too many failures.
	ErrPINLocked = errors.New("credential locked")
	// ErrUnreachable: network failure, TLS failure, 5xx, timeout.
	ErrUnreachable = errors.New("service unreachable")
	// ErrNotLoggedIn: no service token, or it expired and cannot be refreshed.
	ErrNotLoggedIn = errors.New("not logged in to the service")
	// ErrCanceled: the user declined in the browser or let it time out.
	ErrCanceled = errors.New("authorization canceled by the user")
	// ErrRejected: the service refused the request (credential disabled,
	// access denied, a parameter or algorithm it does not take: HTTP 400
	// or 403); CKR_FUNCTION_FAILED (serviceErrors).
	ErrRejected = errors.New("request rejected by the service")
	// ErrSADInvalid: the SAD expired or was used up; the module
	// re-authorizes once.
	ErrSADInvalid = errors.New("SAD expired or invalid")
)

// PINError reports a wrong PIN with the remaining attempts when the
// service says so. It matches ErrPINIncorrect with errors.Is.
type PINError struct {
	// RemainingAttempts is -1 when unknown.
	RemainingAttempts int
	Err               error // optional underlying error
}

func (e *PINError) Error() string {
	msg := ErrPINIncorrect.Error()
	if e.RemainingAttempts >= 0 {
		msg = fmt.Sprintf("%s (%d attempts left)", msg, e.RemainingAttempts)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrPINIncorrect) true.
func (e *PINError) Is(target error) bool { return target == ErrPINIncorrect }

// Unwrap returns the underlying error.
func (e *PINError) Unwrap() error { return e.Err }

// ObjectHandle names an object for PKCS#11 (defined in package objects).
type ObjectHandle = objects.Handle

// AttributeRequest is one entry of a C_GetAttributeValue template (defined
// in package objects).
type AttributeRequest = objects.AttributeRequest
