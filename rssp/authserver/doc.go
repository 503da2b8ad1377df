// Package authserver is the logic of the RSSP's OAuth2 authorization
// server; package rssp/oauth serves it over HTTP. It holds registered
// clients' authentication, authorization requests (direct and pushed,
// RFC 9126), the user's login and consent with the credential's factors,
// single-use authorization codes with PKCE (RFC 7636), tokens for the
// service and credential scopes, refresh with rotation, client credentials
// and revocation (RFC 7009).
//
// It keeps its own state (clients, requests, codes, browser sessions,
// tokens) in the RSSP's store, and uses the CSC service (rssp/service)
// only through the narrow interface CSC: the users who log in, their
// credentials and factors, the credential tokens it issues (SADs) and the
// audit log. Client registration is an administration command of the
// service (service.AddOAuthClient).
//
// A credential-scope access token is bound like a SAD: the service issues
// it with a SAD row keyed by the token's own hash, bound to the credential,
// to the hashes when they were given and to numSignatures, expiring with
// the token. So the token works unchanged as the SAD parameter of
// signatures/signHash and, as the Bearer token without SAD, as its own SAD
// (service.AuthenticateMethod).
//
// Every method takes a context and is safe for concurrent use. Errors wrap
// one of the kinds in errors.go or of rssp/service; rssp/oauth maps them to
// the wire in one place.
package authserver
