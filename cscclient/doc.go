// Package cscclient is a client of the Cloud Signature Consortium API
// (CSC API v2.0.0.2, and v1.0.4.0 through the same Go API): every method
// of a remote signing service with the request and response types of package
// csc, service authentication with auth/login, and the polling of
// out-of-band credential authorization. It knows HTTP, JSON and tokens, and
// nothing of PKCS#11. Reference: docs/mapping.md; the spec at
// https://cloudsignatureconsortium.org/resources/download-api-specifications/.
//
// # Wire versions
//
// The base URL says which version is spoken: ".../csc/v2" or ".../csc/v1".
// With v1 the client translates on the fly (csc/v1.go): hashes travel as
// hash, hashAlgorithmOID as hashAlgo, authData as PIN and OTP,
// getChallenge as credentials/sendOTP, credentials/info's authMode, PIN and
// OTP come back as a v2 auth object, and credentials/list's credentialInfo
// is filled by calling credentials/info per credential. The v2-only methods
// (authorizeCheck, signPolling) fail with ErrNotSupported on v1.
//
// # Strict out, lenient in
//
// Requests carry only the field names of the version spoken and standard
// base64; query strings use base64url (EncodeQueryHashes). Responses may use
// either base64 alphabet, padded or not; info's authType in any case
// ("tls"); credentials/info without auth; SCAL as a number; ECDSA
// signatures as DER or raw r‖s (SignHash normalises them to DER; ECDSAToRaw
// and ECDSAToDER convert); 200, 201 or 204 where sources disagree.
//
// # Errors
//
// Every method returns an *Error: HTTP status, CSC error and
// error_description, a bounded excerpt of the body (none for bodies that may
// carry a token or SAD). errors.Is matches the kinds: ErrInvalidToken,
// ErrExpiredToken, ErrWrongPIN, ErrCredentialLocked, ErrCredentialDisabled,
// ErrAccessDenied, ErrTransport, ErrTimeout, ErrTLS, ErrBadResponse (an
// error inside a 200 included)... Nothing secret is logged or put in errors.
//
// # HTTP
//
// One *http.Client per Client: per-attempt timeout, TLS 1.2 or later, system
// roots plus an optional CA file, optional SPKI pinning, TLS session
// resumption, keep-alive with 64 idle connections per host, HTTP/1.1 even
// when the server offers HTTP/2 (less CPU per call on both sides; see
// newTransport). With a CA file the system roots are loaded only when a server's
// chain does not verify against the CA file alone (loading them costs tens
// of milliseconds at a process's first connection); the servers trusted
// are the same. Bodies are read through
// io.LimitReader (4 MiB). Redirects to another origin, or that change the
// method, are refused, and the Bearer is only ever sent to the base URL's
// origin. Idempotent methods (info, credentials/list and info,
// authorizeCheck, signPolling, timestamp, revoke) are retried with backoff
// on 429 (honouring Retry-After) and 503; every method, signHash included,
// is retried when the connection was refused, that is before anything was
// sent; signHash, authorize, extendTransaction, getChallenge and auth/login
// never once sent. The context bounds each call; cancelling it aborts the
// request. WithCallerIO (the PKCS#11 library, on Linux) does each call's
// network I/O on the calling goroutine over blocking sockets, with the same
// guarantees.
//
// # Service authentication
//
// A Session is a TokenSource: a cache of the access token, guarded by a
// one-slot semaphore, that refreshes it silently with the refresh token a
// little before it expires (DefaultExpiryDelta) and keeps it in a
// SecretStore (package tokenstore: the OS keyring, else a 0600 file).
// Transport adds the Bearer. OAuth2 lives in package cscclient/oauth: the
// authorization code with PKCE in the system browser gives a Session its
// Login and Refresh (the service scope), and the credential scope gives the
// credential token that WithCredentialToken carries to signHash;
// HTTPClient gives that package this Client's TLS settings without the
// Bearer.
//
// # Concurrency
//
// A Client and a Session are safe for concurrent use; calls run in parallel
// on kept-alive connections, with no lock around network calls (a Session
// serialises only token refreshes).
//
// # Example
//
//	store, _ := tokenstore.New(tokenstore.Options{})
//	c, err := cscclient.New("https://rssp.example:8443/csc/v2",
//		cscclient.WithCAFile("/etc/csctoken/tls-ca.pem"))
//	if err != nil { ... }
//	s := c.NewBasicSession("alice", store, nil)
//	tok, err := c.LoginToken(ctx, "alice", password, true) // csctoken login
//	_ = s.Set(ctx, tok)
//	c.SetTokenSource(s)
//	list, err := c.ListCredentials(ctx, &csc.CredentialsListRequest{
//		CredentialInfo: true, Certificates: csc.CertsChain, CertInfo: true, AuthInfo: true})
//	auth, err := c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: id, NumSignatures: 1,
//		AuthData: []csc.AuthData{{ID: "PIN", Value: pin}}})
//	sig, err := c.SignHash(ctx, &csc.SignHashRequest{CredentialID: id, SAD: auth.SAD,
//		Hashes: []csc.Bytes{digest}, SignAlgo: csc.OIDECDSAWithSHA256})
//	if errors.Is(err, cscclient.ErrWrongPIN) { ... }
package cscclient
