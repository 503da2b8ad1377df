package csc

import (
	"fmt"
)

// Error codes of the CSC API (v1 and v2) and of OAuth2.
const (
	ErrInvalidRequest          = "invalid_request"
	ErrUnauthorizedClient      = "unauthorized_client"
	ErrAccessDenied            = "access_denied"
	ErrUnsupportedResponseType = "unsupported_response_type"
	ErrInvalidScope            = "invalid_scope"
	ErrServerError             = "server_error"
	ErrTemporarilyUnavailable  = "temporarily_unavailable"
	ErrExpiredToken            = "expired_token"
	ErrInvalidToken            = "invalid_token"
	ErrInvalidGrant            = "invalid_grant"
	ErrInvalidClient           = "invalid_client"
	ErrAuthenticationError     = "authentication_error"
	ErrInvalidPIN              = "invalid_pin"
	ErrInvalidOTP              = "invalid_otp"
	// ErrInvalidAuthData is v2's code for wrong authentication data in
	// credentials/authorize (docs/mapping.md, "CSC notes").
	ErrInvalidAuthData = "invalid_authentication_data"
	// ErrCredentialLocked is a custom code: too many wrong PINs.
	ErrCredentialLocked = "credential_locked"
	// ErrCredentialDisabled is a custom code: the credential is disabled.
	ErrCredentialDisabled = "credential_disabled"
	// ErrNotImplemented is the body of a 501.
	ErrNotImplemented = "not_implemented"
	// ErrAcceptedRequest is the body of a 202 while an operation is pending.
	ErrAcceptedRequest = "accepted_request"
)

// Error is the error body of every CSC method: {"error","error_description"}.
type Error struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *Error) Error() string {
	if e.Description == "" {
		return "csc: " + e.Code
	}
	return fmt.Sprintf("csc: %s: %s", e.Code, e.Description)
}
