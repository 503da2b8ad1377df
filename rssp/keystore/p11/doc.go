// Package p11 is the RSSP's PKCS#11 key backend: credential keys are
// generated inside a token (SoftHSM2 or a real HSM) as non-extractable,
// sensitive, persistent private keys, and every signature is computed by the
// token. It uses github.com/miekg/pkcs11 and therefore needs cgo; without
// cgo, Open returns an error saying so.
//
// A key's reference is its CKA_ID (16 random bytes, shared by the private
// and public key objects); CKA_LABEL is the label given to Generate (the
// credential ID). Sign uses CKM_RSA_PKCS over a DigestInfo it builds,
// CKM_RSA_PKCS_PSS, or CKM_ECDSA (the token's r||s is returned as DER), so
// the token only ever sees digests.
//
// Concurrency: PKCS#11 sessions must not be used by two threads at once, so
// a Backend owns a pool of sessions opened at Open and logged in once
// (login state is per token and application, shared by every session).
// Each Generate, Sign or Delete borrows one session for its whole duration
// and returns it; a *Backend is therefore safe for concurrent use, with up
// to PoolSize operations in flight and the rest waiting, bounded by their
// context and Config.PoolWait. Object handles are cached per reference, so a
// signature is normally C_SignInit + C_Sign on a borrowed session. Close
// waits for operations in flight, then closes the sessions, logs out and
// finalizes the library.
//
// Losing the token: an operation whose return value says the token is
// gone (CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED, CKR_DEVICE_ERROR,
// CKR_SESSION_HANDLE_INVALID, ..., or a key not found while the token no
// longer answers C_GetTokenInfo) marks the Backend down: from then on every
// call fails at once with an error wrapping keystore.ErrUnavailable, which
// carries a retry hint (keystore.RetryAfter), and Available says so without
// calling the token. A goroutine re-opens the token, first after
// Config.ReopenMinWait, then with the wait doubled up to
// Config.ReopenMaxWait: holding the Backend's operation lock and the
// module's use lock for writing (no operation of any Backend in flight on
// the library), it finalizes and initialises the library (SoftHSM2 reads
// its token store only in C_Initialize), finds the token, opens the
// sessions, logs in and forgets the cached handles. Other Backends on the
// same library see its generation move and re-open their sessions without
// finalizing it again. Check (the readiness probe) also notices a lost
// token, and caches its answer for Config.CheckTTL.
//
// Several Backends may use the same module in one process (for example two
// tokens of one HSM): the library is loaded and C_Initialize'd by the first
// and C_Finalize'd by the last to close. A library that something else in
// the process already initialised is used as is and never finalized here.
//
// Usage:
//
//	b, err := p11.Open(ctx, p11.Config{
//		Module:     "/usr/lib/softhsm/libsofthsm2.so",
//		TokenLabel: "csctoken",
//		PIN:        pin, // read from a file, never from the command line
//	})
//	if err != nil { ... }
//	defer b.Close()
//	ref, pub, err := b.Generate(ctx, keystore.RSA3072, credentialID)
package p11
