// Package cabi tests the C ABI of the built libcsctoken.so from C hosts:
// small C drivers compiled with gcc (testdata/driver.c) and OpenSC's
// pkcs11-tool, with openssl checking the signatures.
//
// The tests build the library with `go build -buildmode=c-shared` (the
// shipped build, and the csctoken_fake build whose slots are served by
// module/fakeservice) into a temporary directory. No Go program loads the
// library: two Go runtimes in one process are unsupported (docs/architecture.md).
//
// gcc, pkg-config with p11-kit-1, pkcs11-tool and openssl are needed; a
// test skips when one is missing, unless CSCTOKEN_REQUIRE_TOOLS=1 (as in
// CI), which turns the skip into a failure.
package cabi
