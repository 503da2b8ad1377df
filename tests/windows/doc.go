// Package windows tests the Windows build of csctoken under wine: `make
// windows`'s script (installer/windows/build.sh) cross-builds csctoken.dll,
// csctoken.exe and the MSI and Authenticode-signs them through
// libcsctoken.so; then, in a wine prefix, the C host of tests/e2e
// (testdata/session.c, cross-compiled with mingw-w64) loads csctoken.dll and
// signs with a real rssp on 127.0.0.1 (RSA PKCS#1 v1.5, RSA-PSS, ECDSA, each
// verified by openssl here), C_Finalize returns while a signature waits,
// the CLI csctoken.exe logs in, and the MSI installs, signs and uninstalls
// without a trace.
//
// Debian 12's wine (8.0) lacks bcryptprimitives.dll, whose ProcessPrng the
// Go runtime needs: testdata/bcryptprimitives.c is a test-only stand-in
// copied into the prefix's system32, never shipped. The prepared prefix is
// cached under the user cache directory (csctoken/wine-<version>) and
// rebuilt when missing or after a failed run.
//
// Needs wine, mingw-w64, wixl, osslsigncode, libp11's engine and openssl;
// a test without them skips, or fails with CSCTOKEN_REQUIRE_WINE=1 (CI).
package windows
