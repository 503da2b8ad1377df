// Package oauth is the OAuth2 client of cscclient: the authorization code
// grant with PKCE (RFC 6749 §4.1, RFC 7636 S256) in the system browser,
// for the CSC API's two scopes (docs/mapping.md, "CSC coverage" and "CSC notes"):
//
//   - service: Login gets an access and a refresh token, Refresh redeems
//     the refresh token silently, Revoke and Logout end them (RFC 7009).
//     They are the Login and Refresh hooks of a cscclient.Session
//     (NewSession), which keeps the tokens in a SecretStore (package
//     tokenstore) like those of auth/login.
//   - credential: AuthorizeCredential authorizes one signature batch: the
//     service's consent page shows the credential, the number of signatures
//     and the documents (labels and hashes) and collects the credential's
//     PIN or OTP; the credential token it returns is the Bearer of
//     signatures/signHash (cscclient.WithCredentialToken), without SAD.
//     With document labels the request is RFC 9396 authorization_details
//     of type "credential"; without, the CSC parameters credentialID,
//     numSignatures, hashes (base64url, comma-separated) and
//     hashAlgorithmOID.
//
// # The browser round trip
//
// Each flow listens on 127.0.0.1 on a port the system picks and uses
// http://127.0.0.1:PORT/callback as the redirect URI (RFC 8252 §7.3: the
// client is registered with http://127.0.0.1/callback, any port). The
// request is pushed to the server first when its metadata names a
// pushed_authorization_request_endpoint (RFC 9126), so the URL that the
// browser opens holds only client_id and request_uri. The URL goes to
// Config.Out and Config.OnURL (for headless use) and to the Opener, by
// default the system browser through github.com/pkg/browser (xdg-open,
// which honours $BROWSER, on Linux). The redirect must carry the state
// that was sent (ErrStateMismatch) and, when present or promised by the
// metadata, the server's iss (RFC 9207, ErrIssuerMismatch); it is
// answered with a small page telling the user how the flow ended ("You
// can close this window"). The wait is bounded by Config.Timeout
// (DefaultTimeout, 5 minutes; ErrTimeout) and by the context; whatever
// ends the flow, the listener is closed and its goroutines have returned
// before the call does.
//
// # Endpoints
//
// The authorization server is the CSC info's oauth2 (or oauth2Issuer).
// Its endpoints come from RFC 8414 metadata
// ({issuer}/.well-known/oauth-authorization-server, the well-known path
// inserted before the issuer's path when it has one), whose issuer must be
// the expected one; a server without metadata gets the CSC layout
// {issuer}/oauth2/authorize, /token and /revoke, without PAR.
//
// # Clients
//
// A desktop program is a public client (Config.ClientID only, client_id in
// the forms; PKCE protects the code). A confidential client sets
// Config.ClientSecret, sent with HTTP Basic (client_secret_basic).
//
// # Errors
//
// Every OAuth2 error, from an endpoint's JSON (RFC 6749 §5.2) or from the
// redirect (§4.1.2.1), is an *Error holding error, error_description and
// error_uri, and errors.Is matches cscclient's kinds: a user who declines
// is cscclient.ErrAccessDenied, a refused refresh token or code
// cscclient.ErrAuthentication, no answer cscclient.ErrTransport. Local
// failures of the round trip are ErrTimeout, ErrStateMismatch,
// ErrIssuerMismatch and ErrNoBrowser; a cancelled context comes back as
// the context's error. Tokens, codes and verifiers are never logged nor
// put in errors.
//
// # Concurrency
//
// A Client is safe for concurrent use: each flow has its own listener,
// state and verifier, and endpoints are discovered once.
//
// # Example
//
//	cl, _ := cscclient.New("https://rssp.example/csc/v2", cscclient.WithCAFile(ca))
//	oc, err := oauth.NewForService(ctx, cl, oauth.Config{ClientID: "csctoken", Out: os.Stderr})
//	store, _ := tokenstore.New(tokenstore.Options{})
//	s := oc.NewSession("alice", store) // browser only when no stored token works
//	cl.SetTokenSource(s)
//	list, err := cl.ListCredentials(ctx, &csc.CredentialsListRequest{CredentialInfo: true})
//
//	// One signature batch with an oauth2code credential:
//	tok, err := oc.AuthorizeCredential(ctx, oauth.CredentialRequest{
//		CredentialID: id, Hashes: [][]byte{digest}, HashAlgorithmOID: csc.OIDSHA256,
//		Labels: []string{"contract.pdf"}})
//	if errors.Is(err, cscclient.ErrAccessDenied) { ... } // the user declined
//	sig, err := cl.SignHash(cscclient.WithCredentialToken(ctx, tok.AccessToken), &csc.SignHashRequest{
//		CredentialID: id, Hashes: []csc.Bytes{digest}, HashAlgorithmOID: csc.OIDSHA256,
//		SignAlgo: csc.OIDECDSAWithSHA256})
//
//	err = oc.Logout(ctx, s) // csctoken logout
package oauth
