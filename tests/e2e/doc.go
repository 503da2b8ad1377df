// Package e2e tests libcsctoken.so end to end: the shipped build of the
// module, loaded by OpenSC's pkcs11-tool and by a small C host
// (testdata/session.c), signing through a real RSSP (internal/rssptest,
// keys in SoftHSM2 or in the software keystore) over HTTPS, with openssl
// verifying every signature against the certificate read from the token.
//
// The service login is made as a user makes it, with `csctoken login
// --password-stdin`; the token lands in the 0600 file fallback of
// cscclient/tokenstore under the test's own XDG_CONFIG_HOME (the D-Bus
// session address points at nothing, so no OS keyring is touched).
// Every C host runs with a private HOME, XDG_CONFIG_HOME, XDG_CACHE_HOME,
// CSCTOKEN_CONFIG and CSCTOKEN_LOG, and each module log is checked for
// secrets when its test ends.
//
// TestCancelWhileSigning puts a TLS proxy of its own between the module
// and the RSSP, which holds chosen requests (signHash, an authorization,
// a handshake) unanswered, to end a C_Sign blocked on them with
// C_SessionCancel, C_CloseSession, C_Finalize or the timeout.
//
// No Go program loads the library: two Go runtimes in one process are
// unsupported (docs/architecture.md). The tests build the library, the csctoken CLI
// and the C host once per test binary into a temporary directory.
//
// Tools: gcc, pkg-config with p11-kit-1, pkcs11-tool and openssl (a test
// skips when one is missing, unless CSCTOKEN_REQUIRE_TOOLS=1), and
// SoftHSM2 for the PKCS#11 backend (skipped unless
// CSCTOKEN_REQUIRE_SOFTHSM=1).
package e2e
