package authserver

import (
	"errors"

	"github.com/csctoken/csctoken/rssp/service"
)

// OAuth2 error kinds (RFC 6749 §4.1.2.1 and §5.2, RFC 9101 §6.2,
// RFC 9396 §5). With service.ErrInvalidRequest, service.ErrAccessDenied and
// the factor kinds, rssp/oauth maps them to the wire in one place.
var (
	ErrInvalidClient               = errors.New("invalid client")                // 401 invalid_client
	ErrInvalidGrant                = errors.New("invalid grant")                 // 400 invalid_grant
	ErrUnauthorizedClient          = errors.New("unauthorized client")           // 400 unauthorized_client
	ErrUnsupportedGrantType        = errors.New("unsupported grant type")        // 400 unsupported_grant_type
	ErrUnsupportedResponseType     = errors.New("unsupported response type")     // unsupported_response_type
	ErrInvalidScope                = errors.New("invalid scope")                 // invalid_scope
	ErrInvalidRequestURI           = errors.New("invalid request_uri")           // invalid_request_uri
	ErrInvalidAuthorizationDetails = errors.New("invalid authorization_details") // invalid_authorization_details
)

func fail(kind error, format string, args ...any) error {
	return service.Fail(kind, format, args...)
}

func badRequest(format string, args ...any) error {
	return service.Fail(service.ErrInvalidRequest, format, args...)
}

// description is the client-safe description of an error.
func description(err error) string {
	var p *service.Problem
	if errors.As(err, &p) {
		return p.Description
	}
	return "internal error"
}

// resultCode names an error for the audit log: "ok" for nil, the code of
// its kind (the service's, or the OAuth2 kinds here), server_error for
// another.
func resultCode(err error) string {
	if err == nil {
		return "ok"
	}
	if errors.Is(err, ErrClonedAuthenticator) {
		return "cloned_authenticator"
	}
	if code := service.ResultCode(err); code != "server_error" {
		return code
	}
	for _, k := range []struct {
		kind error
		code string
	}{
		{ErrInvalidClient, "invalid_client"}, {ErrInvalidGrant, "invalid_grant"},
		{ErrUnauthorizedClient, "unauthorized_client"}, {ErrUnsupportedGrantType, "unsupported_grant_type"},
		{ErrUnsupportedResponseType, "unsupported_response_type"}, {ErrInvalidScope, "invalid_scope"},
		{ErrInvalidRequestURI, "invalid_request_uri"}, {ErrInvalidAuthorizationDetails, "invalid_authorization_details"},
	} {
		if errors.Is(err, k.kind) {
			return k.code
		}
	}
	return "server_error"
}
