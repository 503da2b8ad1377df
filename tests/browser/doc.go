// Package browser tests, end to end, the browser paths of the built
// libcsctoken.so and of the csctoken CLI: auth = "oauth2" (service login in
// the browser) and credential_auth = "browser" (each signature authorized
// on the service's consent page, OAuth2 credential scope), against a real
// RSSP (internal/rssptest) with its OAuth2 authorization server.
//
// The hosts are OpenSC's pkcs11-tool and the csctoken binary, run as
// subprocesses: no Go program loads the library (docs/architecture.md). The module
// opens the browser as it would on a desktop, through xdg-open, which
// honours $BROWSER outside a desktop session; the test points $BROWSER at
// a small script that appends the URL to a file, watches that file, and
// plays the user in a headless Chromium driven with chromedp: it signs in,
// reads the consent page (the hash and the label naming the program and
// the key), types the credential's PIN, approves or denies.
//
// Needed: chromium (skipped without it unless CSCTOKEN_REQUIRE_CHROMIUM=1),
// and gcc, pkg-config with p11-kit-1, pkcs11-tool, openssl and xdg-open
// (Debian: xdg-utils; skipped without them unless CSCTOKEN_REQUIRE_TOOLS=1).
package browser
