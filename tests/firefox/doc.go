// Package firefox runs the real browsers with the token, as a person
// would: Debian's Firefox ESR under Xvfb with a fresh profile in which
// `csctoken register --firefox` put the module, the person's keystrokes
// typed with xdotool, TLS client authentication to a local HTTPS server
// that requires a certificate from the rssp's CA, and the proof taken on
// the server's side (the certificate it received); and Debian's
// Thunderbird ESR signing an S/MIME message with the token's key, sent to
// an SMTP sink and verified by openssl. A failed test keeps a
// screenshot and the module log under $CSCTOKEN_ARTIFACTS (default
// build/test-artifacts). Every browser runs in its own process group
// under a hard limit and is killed with it.
//
// CSCTOKEN_REQUIRE_FIREFOX=1 (CI) makes a missing firefox-esr, Xvfb,
// xdotool or thunderbird a failure instead of a skip.
package firefox
