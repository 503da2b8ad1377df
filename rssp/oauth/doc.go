// Package oauth is the RSSP's own OAuth2 authorization server, the HTTP side
// of the CSC API's oauth2/* methods (docs/mapping.md, "CSC coverage" and "CSC notes"):
//
//	GET  /oauth2/authorize          authorization request (RFC 6749 §4.1, PKCE RFC 7636), 302
//	POST /oauth2/pushed_authorize   pushed authorization request (RFC 9126), 201 {request_uri, expires_in}
//	POST /oauth2/token              authorization_code, refresh_token, client_credentials
//	POST /oauth2/revoke             token revocation (RFC 7009), 200
//	GET  /.well-known/oauth-authorization-server   metadata (RFC 8414)
//	GET|POST /oauth2/login          the login page (username, password)
//	GET|POST /oauth2/consent        the consent page (and the credential's PIN / OTP)
//	GET|POST /oauth2/keys           the user's security keys (FIDO2/WebAuthn): list, add, remove
//	GET  /oauth2/status             what the login and consent pages poll: pending, abandoned or gone
//	POST /oauth2/abandon            not OAuth2: the program that pushed a credential request stops
//	                                waiting (Bearer: the owner's service token; request_uri), 204
//
// A pushed credential request that its program abandoned (the host quit
// while the user was on the consent page) is kept until it expires: the
// pages, opened or polling, say "This request was abandoned by the program
// that asked for it; you can close this page." (410), and approving it
// gives no code. The metadata names the endpoint as
// csctoken_abandon_endpoint.
//
// Scopes are "service" and "credential". A credential request names the
// credential, the number of signatures and, optionally (required for SCAL 2),
// the hashes: as CSC query parameters (credentialID, numSignatures, hashes in
// base64url separated by commas, hashAlgorithmOID) or as RFC 9396
// authorization_details of type "credential" or
// "https://cloudsignatureconsortium.org/2025/credential" with
// documentDigests and their labels, directly or pushed. The consent page
// shows the client, the credential (description, certificate subject), the
// number of signatures and every document's label and hash, and asks for
// the credential's factors, checked by the service (failures counted, the
// credential locks at the limit). The credential token it leads to is bound
// like a SAD (see rssp/authserver) and is accepted by signHash as
// the Bearer token or as SAD.
//
// Protocol rules: PKCE with S256 for every client, plain refused; exact
// redirect URIs, except loopback http://127.0.0.1 and http://[::1] URIs,
// which match any port (RFC 8252 §7.3); errors go back to the redirect URI
// with state (and iss, RFC 9207) once client and redirect URI are known to
// be good, and to an error page before; codes live 60 s and serve once, a
// second use revokes what the first issued; refresh tokens rotate and a
// replayed one revokes its family; client secrets, codes, request handles,
// session cookies and tokens are stored hashed.
//
// A signatureQualifier next to the credentialID must be the credential's
// (checked at consent). Not served: signatureQualifier without a
// credentialID (refused with invalid_request: credentials/list with
// signatureQualifier finds the credentials that carry it), request objects
// (JAR), and response modes other than query. authorization_details and clientData sent to the token endpoint
// are ignored: the code already carries what the user consented to.
//
// A user with security keys confirms the login with one after the password
// (a second step of POST oauth2/login), and a credential with the security
// key factor is approved with the key on the consent page (docs/fido2.md);
// the pages' only script for it is the embedded webauthn.js.
//
// The pages are plain server-rendered HTML (html/template, embedded), work
// without JavaScript (except the security key step: WebAuthn is a
// JavaScript API) and load nothing from elsewhere (a strict
// Content-Security-Policy allows only their own inline style). The browser's
// session is a short-lived cookie (HttpOnly, Secure over https,
// SameSite=Strict, __Host- prefixed) naming a server-side session stored by
// its hash, replaced at login. Forms carry a per-session CSRF token (a hash
// of the session cookie, which cross-site pages cannot read) and a foreign
// Origin header is refused. Submitting a consent form twice is answered
// once: the pending request is taken atomically.
//
// # Why not ory/fosite
//
// We evaluated github.com/ory/fosite v0.49.0 and wrote the protocol by hand,
// for these reasons:
//   - It has no Rich Authorization Requests: no authorization_details
//     anywhere in v0.49.0 (ory/fosite#822, closed unimplemented), while the
//     CSC credential scope rests on them and on its own query parameters
//     (credentialID, numSignatures, hashes, hashAlgorithmOID), which fosite
//     would pass through as an untyped form for us to parse anyway.
//   - Its storage model persists whole fosite.Requester/Session objects
//     behind about eight storage interfaces keyed by token signatures; our
//     store keeps typed rows (codes bound to credential, hashes and count;
//     tokens hashed; SADs), and the credential token must be created
//     together with a SAD row keyed by the token's hash, which would need a
//     custom token strategy and session type on top.
//   - Login and the consent with the credential's factors (PIN, OTP, failure
//     counting and locking) are outside fosite in any case, and the token
//     response needs CSC fields (credentialID, authorization_details).
//   - It would bring ory/x, gobuffalo/pop, logrus, OpenTelemetry, gorilla and
//     dozens more modules into a server that holds signing keys, for four
//     endpoints whose rules fit in a few hundred lines, each tested against
//     the RFCs' error cases.
//
// The package holds no state: everything lives in the service
// (rssp/service) and the authorization server's logic (rssp/authserver),
// and their store; a Server is safe for concurrent use.
package oauth
