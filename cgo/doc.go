// Package main in cgo/ is libcsctoken.so, the PKCS#11 module of csctoken: the C
// ABI around package module, and nothing else. Build it with
//
//	go build -trimpath -buildmode=c-shared -o build/libcsctoken.so ./cgo
//
// It needs gcc, pkg-config and p11-kit's pkcs11.h (Debian: libp11-kit-dev);
// no PKCS#11 header is copied into the repository. The library links only
// against libc.
//
// # Layout
//
// pkcs11.c defines every function of PKCS#11 2.40 and 3.0, a static
// CK_FUNCTION_LIST (version 2.40) and CK_FUNCTION_LIST_3_0, and
// C_GetFunctionList, C_GetInterfaceList and C_GetInterface (interface
// "PKCS 11", versions 3.0, the default, and 2.40; no flags: the module is
// not CKF_INTERFACE_FORK_SAFE). Each C_* function checks the library state
// and its pointer arguments in C, then calls a Go export of exports.go
// (goXxx), which converts C values to Go ones (templates to []ck.Attribute,
// CK_MECHANISM to ck.Mechanism, buffers with unsafe.Slice) and calls the
// module. Functions a read-only signing token cannot do (encryption,
// decryption, wrapping, recovery, dual-function and message-based
// operations, operation state) answer CKR_FUNCTION_NOT_SUPPORTED in C.
// C_LoginUser is C_Login with the user name ignored: tokens have no user
// names. C_SessionCancel ends the operations its flags name; a signature
// waiting on the service then returns CKR_FUNCTION_CANCELED.
//
// Every function called before C_Initialize (or after C_Finalize) answers
// CKR_CRYPTOKI_NOT_INITIALIZED, supported or not, whatever its arguments;
// C_GetFunctionList and C_GetInterface* work at any time. Then NULL
// pointers are CKR_ARGUMENTS_BAD; output buffers follow the PKCS#11 length
// conventions (a NULL buffer asks for the length; a short one gets
// CKR_BUFFER_TOO_SMALL with the length set).
//
// Only the C_* symbols are exported: exports.o is a GNU ld version script
// (a text file; cgo accepts no -Wl,--version-script flag but does accept
// object files, and ld reads a non-object input as a linker script). macOS
// would need -exported_symbols_list.
//
// # Windows
//
// `make windows` cross-builds csctoken.dll with mingw-w64: a
// -buildmode=c-archive build linked by x86_64-w64-mingw32-gcc -shared
// (Go's own c-shared link would export every goXxx function through the
// .def file it writes). csctoken.h defines CRYPTOKI_EXPORTS, so p11-kit's
// header declares the C_* functions __declspec(dllexport), and those are
// the DLL's only exports. On Windows CK_ULONG is 32 bits and PKCS#11
// structures are packed (#pragma pack(1)), so CK_ATTRIBUTE.pValue,
// CK_MECHANISM.pParameter and CK_INFO.flags sit at unaligned offsets that
// Go cannot address: exports.go reads and writes them through the
// accessors of csctoken.h (csct_attr_at, csct_mech_of, ...), on every
// platform alike. pkcs11.c asserts the size and field offsets of every
// structure the module reads or writes, for Windows x64 and for LP64.
// Windows has no fork, so the fork guard below is compiled out there.
//
// # Threads, finalization, exit
//
// Every legal CK_C_INITIALIZE_ARGS is accepted (CKF_OS_LOCKING_OK and/or
// mutex callbacks, which are never called: the module uses Go's locks);
// pReserved must be NULL. No C lock is held across a Go call except during
// C_Initialize and C_Finalize themselves, so sessions sign in parallel and
// C_Finalize returns at once even while another thread's C_Sign waits on
// the network (the module cancels it; it returns
// CKR_CRYPTOKI_NOT_INITIALIZED). Calls from atexit handlers are fine. A
// panic in this package is recovered at the boundary and answered with
// CKR_GENERAL_ERROR (the module recovers its own). The library cannot be
// unloaded (Go c-shared libraries are NODELETE).
//
// # Fork
//
// The Go runtime does not survive fork: in a child only the forking thread
// exists. The C side therefore compares getpid() with the pid that loaded
// the library at the top of every function, and a forked child never
// enters Go. In the child every function answers
// CKR_CRYPTOKI_NOT_INITIALIZED (except C_GetFunctionList and
// C_GetInterface*) until the child calls C_Initialize, which then succeeds
// with an empty C-only module: C_GetInfo as in the parent, C_GetSlotList
// with no slots, CKR_SLOT_ID_INVALID or CKR_SESSION_HANDLE_INVALID for
// slots and sessions (the parent's are not valid in the child), and
// C_Finalize. `pkcs11-tool --test-fork` passes. A host that forks and needs
// the token in the child (and a host that embeds another Go runtime, or
// uses musl, where Go libraries cannot be loaded) should use the module
// out of process:
//
//	p11-kit server --provider /usr/lib/libcsctoken.so "pkcs11:"
//
// and load p11-kit-client.so with P11_KIT_SERVER_ADDRESS set as printed.
//
// # Configuration, services, log
//
// The module reads the config found by module/config ($CSCTOKEN_CONFIG,
// then $XDG_CONFIG_HOME/csctoken/csctoken.toml, then
// /etc/csctoken/csctoken.toml; on Windows %APPDATA%\csctoken\csctoken.toml,
// then %ProgramData%\csctoken\csctoken.toml) at each C_Initialize; newService (service
// files) builds each slot's service. The log is off by default;
// CSCTOKEN_LOG=/path (or the config's `log`) appends to that file, created
// with mode 0600; it never contains a PIN, password, token or SAD.
//
// The test build, go build -tags csctoken_fake, serves every slot from
// module/fakeservice, configured by environment variables (see
// service_fake.go); it is never shipped. The tests of the built library
// are in tests/cabi; they drive it from C hosts only, since no Go program
// may load it (two Go runtimes in one process are unsupported).
package main
