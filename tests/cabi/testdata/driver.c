/*
 * driver.c: a C host for libcsctoken.so, used by the tests in cabi_test.go
 * (no Go program ever loads the library).
 *
 *   driver LIB abi                  the ABI rules, table style
 *   driver LIB fork                 a forked child never enters Go
 *   driver LIB threads              8 threads signing in parallel
 *   driver LIB finalize-while-signing
 *   driver LIB atexit [busy]        C_CloseSession/C_Finalize from atexit
 *   driver LIB real                 the shipped build without a service
 *   driver LIB lifecycle CASE       one rule of the operation lifecycle
 *
 * Failures go to stderr as "FAIL file:line: ..." and make the exit status
 * 1. Signatures and certificates go to stdout for the Go side to verify
 * independently:  CERT <label> <hex DER> / SIG <mech> <label> <hex input> <hex sig>.
 *
 * The fake build's token (service_fake.go) has a PIN from
 * $CSCTOKEN_FAKE_PIN and the credentials "Key rsa2048" and "Key p256".
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "csctoken.h" /* p11-kit's pkcs11.h plus the 3.0 types if missing */

static CK_FUNCTION_LIST_PTR p11;
static CK_FUNCTION_LIST_3_0_PTR p3;
static void *lib;
static atomic_int failures;
static const char *pin;

static const char *rvname(CK_RV rv)
{
	static char buf[32];
	switch (rv) {
#define N(x) \
	case x:  \
		return #x;
		N(CKR_OK) N(CKR_SLOT_ID_INVALID) N(CKR_GENERAL_ERROR) N(CKR_FUNCTION_FAILED) N(CKR_ARGUMENTS_BAD)
		N(CKR_NO_EVENT) N(CKR_NEED_TO_CREATE_THREADS) N(CKR_ATTRIBUTE_SENSITIVE) N(CKR_ATTRIBUTE_TYPE_INVALID)
		N(CKR_DATA_LEN_RANGE) N(CKR_DEVICE_ERROR) N(CKR_FUNCTION_CANCELED) N(CKR_FUNCTION_NOT_SUPPORTED)
		N(CKR_KEY_HANDLE_INVALID) N(CKR_MECHANISM_INVALID) N(CKR_MECHANISM_PARAM_INVALID)
		N(CKR_OBJECT_HANDLE_INVALID) N(CKR_OPERATION_ACTIVE) N(CKR_OPERATION_NOT_INITIALIZED)
		N(CKR_PIN_INCORRECT) N(CKR_PIN_LOCKED) N(CKR_SESSION_CLOSED) N(CKR_SESSION_HANDLE_INVALID)
		N(CKR_SESSION_PARALLEL_NOT_SUPPORTED) N(CKR_SESSION_READ_ONLY) N(CKR_SIGNATURE_INVALID)
		N(CKR_SIGNATURE_LEN_RANGE) N(CKR_TOKEN_WRITE_PROTECTED) N(CKR_USER_ALREADY_LOGGED_IN)
		N(CKR_USER_NOT_LOGGED_IN) N(CKR_USER_TYPE_INVALID) N(CKR_RANDOM_SEED_NOT_SUPPORTED)
		N(CKR_BUFFER_TOO_SMALL) N(CKR_CRYPTOKI_NOT_INITIALIZED) N(CKR_CRYPTOKI_ALREADY_INITIALIZED)
		N(CKR_FUNCTION_NOT_PARALLEL) N(CKR_KEY_INDIGESTIBLE) N(CKR_SESSION_READ_ONLY_EXISTS)
		N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
#undef N
	}
	snprintf(buf, sizeof(buf), "CKR_0x%lx", (unsigned long)rv);
	return buf;
}

static void fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	atomic_fetch_add(&failures, 1);
}

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (!(cond))                                      \
			fail(__FILE__, __LINE__, __VA_ARGS__);    \
	} while (0)

#define EXPECT(call, want)                                                                        \
	do {                                                                                      \
		CK_RV got_ = (call);                                                              \
		if (got_ != (CK_RV)(want))                                                        \
			fail(__FILE__, __LINE__, "%s = %s, want %s", #call, rvname(got_), rvname(want)); \
	} while (0)

/* MUST: a step the rest depends on. */
#define MUST(call)                                                                            \
	do {                                                                                  \
		CK_RV got_ = (call);                                                          \
		if (got_ != CKR_OK) {                                                         \
			fail(__FILE__, __LINE__, "%s = %s, want CKR_OK", #call, rvname(got_)); \
			exit(1);                                                              \
		}                                                                             \
	} while (0)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void hex(FILE *f, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
}

static void load(const char *path)
{
	CK_C_GetFunctionList gfl;
	CK_C_GetInterface gi;
	CK_INTERFACE_PTR in = NULL;

	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		fprintf(stderr, "FAIL dlopen %s: %s\n", path, dlerror());
		exit(1);
	}
	*(void **)&gfl = dlsym(lib, "C_GetFunctionList");
	*(void **)&gi = dlsym(lib, "C_GetInterface");
	if (gfl == NULL || gi == NULL) {
		fprintf(stderr, "FAIL dlsym: %s\n", dlerror());
		exit(1);
	}
	MUST(gfl(&p11));
	MUST(gi((CK_UTF8CHAR_PTR) "PKCS 11", &(CK_VERSION){3, 0}, &in, 0));
	p3 = in->pFunctionList;
	pin = getenv("CSCTOKEN_FAKE_PIN");
	if (pin == NULL)
		pin = "123456";
}

static CK_RV init_os_locking(void)
{
	CK_C_INITIALIZE_ARGS a = {0};
	a.flags = CKF_OS_LOCKING_OK;
	return p11->C_Initialize(&a);
}

/* ---- helpers on an initialized library ----------------------------------- */

static CK_SESSION_HANDLE open_session(CK_SLOT_ID slot, int rw)
{
	CK_SESSION_HANDLE h = 0;
	MUST(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0), NULL, NULL, &h));
	return h;
}

static void login(CK_SESSION_HANDLE h)
{
	MUST(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)));
}

/* find returns the handles of objects of a class (and label if not NULL). */
static CK_ULONG find(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, const char *label, CK_OBJECT_HANDLE *out,
		     CK_ULONG max)
{
	CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, label ? strlen(label) : 0}};
	CK_ULONG n = 0;
	MUST(p11->C_FindObjectsInit(h, t, label ? 2 : 1));
	MUST(p11->C_FindObjects(h, out, max, &n));
	MUST(p11->C_FindObjectsFinal(h));
	return n;
}

static CK_OBJECT_HANDLE find1(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, const char *label)
{
	CK_OBJECT_HANDLE o[4];
	CK_ULONG n = find(h, cls, label, o, 4);
	if (n != 1) {
		fail(__FILE__, __LINE__, "found %lu objects of class %lu labelled %s, want 1", n, cls, label);
		exit(1);
	}
	return o[0];
}

static void sha256(CK_SESSION_HANDLE h, const unsigned char *data, CK_ULONG n, unsigned char out[32])
{
	CK_MECHANISM m = {CKM_SHA256, NULL, 0};
	CK_ULONG len = 32;
	MUST(p11->C_DigestInit(h, &m));
	MUST(p11->C_Digest(h, (CK_BYTE_PTR)data, n, out, &len));
}

/* sign_verify signs in with mech and the key labelled label, checks the
 * length conventions, verifies with C_Verify and prints the SIG line. */
static void sign_verify(CK_SESSION_HANDLE h, CK_MECHANISM *mech, const char *mname, const char *label,
			const unsigned char *in, CK_ULONG inlen, CK_ULONG want_len, int print)
{
	CK_OBJECT_HANDLE priv = find1(h, CKO_PRIVATE_KEY, label), pub = find1(h, CKO_PUBLIC_KEY, label);
	unsigned char sig[1024];
	CK_ULONG len = 0;

	/* arguments the library refuses end the operation (PKCS#11 §5.2) */
	MUST(p11->C_SignInit(h, mech, priv));
	EXPECT(p11->C_Sign(h, (CK_BYTE_PTR)in, inlen, NULL, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_Sign(h, (CK_BYTE_PTR)in, inlen, NULL, &len), CKR_OPERATION_NOT_INITIALIZED);
	MUST(p11->C_SignInit(h, mech, priv));
	EXPECT(p11->C_Sign(h, NULL, inlen, NULL, &len), CKR_ARGUMENTS_BAD);
	MUST(p11->C_SignInit(h, mech, priv));
	/* size query: no remote call, the operation stays active */
	EXPECT(p11->C_Sign(h, (CK_BYTE_PTR)in, inlen, NULL, &len), CKR_OK);
	CHECK(len == want_len, "%s %s: size query %lu, want %lu", mname, label, len, want_len);
	len = 10;
	EXPECT(p11->C_Sign(h, (CK_BYTE_PTR)in, inlen, sig, &len), CKR_BUFFER_TOO_SMALL);
	CHECK(len == want_len, "%s %s: BUFFER_TOO_SMALL length %lu, want %lu", mname, label, len, want_len);
	len = sizeof(sig);
	EXPECT(p11->C_Sign(h, (CK_BYTE_PTR)in, inlen, sig, &len), CKR_OK);
	CHECK(len == want_len, "%s %s: signature of %lu bytes, want %lu", mname, label, len, want_len);
	/* the operation is over */
	EXPECT(p11->C_Sign(h, (CK_BYTE_PTR)in, inlen, sig, &len), CKR_OPERATION_NOT_INITIALIZED);

	MUST(p11->C_VerifyInit(h, mech, pub));
	EXPECT(p11->C_Verify(h, (CK_BYTE_PTR)in, inlen, sig, len), CKR_OK);
	sig[len / 2] ^= 1;
	MUST(p11->C_VerifyInit(h, mech, pub));
	EXPECT(p11->C_Verify(h, (CK_BYTE_PTR)in, inlen, sig, len), CKR_SIGNATURE_INVALID);
	sig[len / 2] ^= 1;
	if (print) {
		printf("SIG %s %s ", mname, label);
		hex(stdout, in, inlen);
		putchar(' ');
		hex(stdout, sig, len);
		putchar('\n');
	}
}

static void print_cert(CK_SESSION_HANDLE h, const char *label)
{
	CK_OBJECT_HANDLE c = find1(h, CKO_CERTIFICATE, label);
	unsigned char der[4096];
	CK_ATTRIBUTE a = {CKA_VALUE, NULL, 0};
	MUST(p11->C_GetAttributeValue(h, c, &a, 1));
	CHECK(a.ulValueLen > 0 && a.ulValueLen <= sizeof(der), "certificate length %lu", a.ulValueLen);
	a.pValue = der;
	MUST(p11->C_GetAttributeValue(h, c, &a, 1));
	printf("CERT %s ", label);
	hex(stdout, der, a.ulValueLen);
	putchar('\n');
}

/* ---- abi: the rules, table style ----------------------------------------- */

static int fixed_ok(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return 0;
	return 1;
}

#define CHECK_FIXED(field) CHECK(fixed_ok((field), sizeof(field)), #field " is not printable, space-padded text")

/* all_functions calls every function that needs an initialized library
 * with empty arguments and expects want from each. */
static void all_functions(CK_RV want)
{
	CK_FUNCTION_LIST_3_0_PTR f = p3;
#define E(call) EXPECT(f->call, want)
	E(C_Finalize(NULL));
	E(C_GetInfo(NULL));
	E(C_GetSlotList(CK_FALSE, NULL, NULL));
	E(C_GetSlotInfo(0, NULL));
	E(C_GetTokenInfo(0, NULL));
	E(C_GetMechanismList(0, NULL, NULL));
	E(C_GetMechanismInfo(0, 0, NULL));
	E(C_InitToken(0, NULL, 0, NULL));
	E(C_InitPIN(0, NULL, 0));
	E(C_SetPIN(0, NULL, 0, NULL, 0));
	E(C_OpenSession(0, 0, NULL, NULL, NULL));
	E(C_CloseSession(0));
	E(C_CloseAllSessions(0));
	E(C_GetSessionInfo(0, NULL));
	E(C_GetOperationState(0, NULL, NULL));
	E(C_SetOperationState(0, NULL, 0, 0, 0));
	E(C_Login(0, 0, NULL, 0));
	E(C_Logout(0));
	E(C_CreateObject(0, NULL, 0, NULL));
	E(C_CopyObject(0, 0, NULL, 0, NULL));
	E(C_DestroyObject(0, 0));
	E(C_GetObjectSize(0, 0, NULL));
	E(C_GetAttributeValue(0, 0, NULL, 0));
	E(C_SetAttributeValue(0, 0, NULL, 0));
	E(C_FindObjectsInit(0, NULL, 0));
	E(C_FindObjects(0, NULL, 0, NULL));
	E(C_FindObjectsFinal(0));
	E(C_EncryptInit(0, NULL, 0));
	E(C_Encrypt(0, NULL, 0, NULL, NULL));
	E(C_EncryptUpdate(0, NULL, 0, NULL, NULL));
	E(C_EncryptFinal(0, NULL, NULL));
	E(C_DecryptInit(0, NULL, 0));
	E(C_Decrypt(0, NULL, 0, NULL, NULL));
	E(C_DecryptUpdate(0, NULL, 0, NULL, NULL));
	E(C_DecryptFinal(0, NULL, NULL));
	E(C_DigestInit(0, NULL));
	E(C_Digest(0, NULL, 0, NULL, NULL));
	E(C_DigestUpdate(0, NULL, 0));
	E(C_DigestKey(0, 0));
	E(C_DigestFinal(0, NULL, NULL));
	E(C_SignInit(0, NULL, 0));
	E(C_Sign(0, NULL, 0, NULL, NULL));
	E(C_SignUpdate(0, NULL, 0));
	E(C_SignFinal(0, NULL, NULL));
	E(C_SignRecoverInit(0, NULL, 0));
	E(C_SignRecover(0, NULL, 0, NULL, NULL));
	E(C_VerifyInit(0, NULL, 0));
	E(C_Verify(0, NULL, 0, NULL, 0));
	E(C_VerifyUpdate(0, NULL, 0));
	E(C_VerifyFinal(0, NULL, 0));
	E(C_VerifyRecoverInit(0, NULL, 0));
	E(C_VerifyRecover(0, NULL, 0, NULL, NULL));
	E(C_DigestEncryptUpdate(0, NULL, 0, NULL, NULL));
	E(C_DecryptDigestUpdate(0, NULL, 0, NULL, NULL));
	E(C_SignEncryptUpdate(0, NULL, 0, NULL, NULL));
	E(C_DecryptVerifyUpdate(0, NULL, 0, NULL, NULL));
	E(C_GenerateKey(0, NULL, NULL, 0, NULL));
	E(C_GenerateKeyPair(0, NULL, NULL, 0, NULL, 0, NULL, NULL));
	E(C_WrapKey(0, NULL, 0, 0, NULL, NULL));
	E(C_UnwrapKey(0, NULL, 0, NULL, 0, NULL, 0, NULL));
	E(C_DeriveKey(0, NULL, 0, NULL, 0, NULL));
	E(C_SeedRandom(0, NULL, 0));
	E(C_GenerateRandom(0, NULL, 0));
	E(C_GetFunctionStatus(0));
	E(C_CancelFunction(0));
	E(C_WaitForSlotEvent(0, NULL, NULL));
	E(C_LoginUser(0, 0, NULL, 0, NULL, 0));
	E(C_SessionCancel(0, 0));
	E(C_MessageEncryptInit(0, NULL, 0));
	E(C_EncryptMessage(0, NULL, 0, NULL, 0, NULL, 0, NULL, NULL));
	E(C_EncryptMessageBegin(0, NULL, 0, NULL, 0));
	E(C_EncryptMessageNext(0, NULL, 0, NULL, 0, NULL, NULL, 0));
	E(C_MessageEncryptFinal(0));
	E(C_MessageDecryptInit(0, NULL, 0));
	E(C_DecryptMessage(0, NULL, 0, NULL, 0, NULL, 0, NULL, NULL));
	E(C_DecryptMessageBegin(0, NULL, 0, NULL, 0));
	E(C_DecryptMessageNext(0, NULL, 0, NULL, 0, NULL, NULL, 0));
	E(C_MessageDecryptFinal(0));
	E(C_MessageSignInit(0, NULL, 0));
	E(C_SignMessage(0, NULL, 0, NULL, 0, NULL, NULL));
	E(C_SignMessageBegin(0, NULL, 0));
	E(C_SignMessageNext(0, NULL, 0, NULL, 0, NULL, NULL));
	E(C_MessageSignFinal(0));
	E(C_MessageVerifyInit(0, NULL, 0));
	E(C_VerifyMessage(0, NULL, 0, NULL, 0, NULL, 0));
	E(C_VerifyMessageBegin(0, NULL, 0));
	E(C_VerifyMessageNext(0, NULL, 0, NULL, 0, NULL, 0));
	E(C_MessageVerifyFinal(0));
#undef E
}

/* The names of the 3.0 list, in order, to compare with dlsym. */
static const char *const names_3_0[] = {
	"C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList", "C_GetSlotInfo",
	"C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken", "C_InitPIN", "C_SetPIN",
	"C_OpenSession", "C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo", "C_GetOperationState",
	"C_SetOperationState", "C_Login", "C_Logout", "C_CreateObject", "C_CopyObject", "C_DestroyObject",
	"C_GetObjectSize", "C_GetAttributeValue", "C_SetAttributeValue", "C_FindObjectsInit", "C_FindObjects",
	"C_FindObjectsFinal", "C_EncryptInit", "C_Encrypt", "C_EncryptUpdate", "C_EncryptFinal", "C_DecryptInit",
	"C_Decrypt", "C_DecryptUpdate", "C_DecryptFinal", "C_DigestInit", "C_Digest", "C_DigestUpdate",
	"C_DigestKey", "C_DigestFinal", "C_SignInit", "C_Sign", "C_SignUpdate", "C_SignFinal", "C_SignRecoverInit",
	"C_SignRecover", "C_VerifyInit", "C_Verify", "C_VerifyUpdate", "C_VerifyFinal", "C_VerifyRecoverInit",
	"C_VerifyRecover", "C_DigestEncryptUpdate", "C_DecryptDigestUpdate", "C_SignEncryptUpdate",
	"C_DecryptVerifyUpdate", "C_GenerateKey", "C_GenerateKeyPair", "C_WrapKey", "C_UnwrapKey", "C_DeriveKey",
	"C_SeedRandom", "C_GenerateRandom", "C_GetFunctionStatus", "C_CancelFunction", "C_WaitForSlotEvent",
	/* 3.0 */
	"C_GetInterfaceList", "C_GetInterface", "C_LoginUser", "C_SessionCancel", "C_MessageEncryptInit",
	"C_EncryptMessage", "C_EncryptMessageBegin", "C_EncryptMessageNext", "C_MessageEncryptFinal",
	"C_MessageDecryptInit", "C_DecryptMessage", "C_DecryptMessageBegin", "C_DecryptMessageNext",
	"C_MessageDecryptFinal", "C_MessageSignInit", "C_SignMessage", "C_SignMessageBegin", "C_SignMessageNext",
	"C_MessageSignFinal", "C_MessageVerifyInit", "C_VerifyMessage", "C_VerifyMessageBegin",
	"C_VerifyMessageNext", "C_MessageVerifyFinal",
};
#define N_240 68
#define N_30 (sizeof(names_3_0) / sizeof(names_3_0[0]))

static void check_list(const void *list, size_t n, const char *what)
{
	/* A function list is a CK_VERSION followed by function pointers. */
	const CK_C_Initialize *fp = (const CK_C_Initialize *)((const char *)list + offsetof(CK_FUNCTION_LIST, C_Initialize));
	for (size_t i = 0; i < n; i++) {
		void *sym = dlsym(lib, names_3_0[i]);
		CHECK(fp[i] != NULL, "%s: entry %zu (%s) is NULL", what, i, names_3_0[i]);
		CHECK(sym != NULL && (void *)fp[i] == sym, "%s: entry %zu is not %s", what, i, names_3_0[i]);
	}
}

static void abi_lists(void)
{
	CK_INTERFACE list[4];
	CK_ULONG n;
	CK_INTERFACE_PTR in;
	CK_FUNCTION_LIST_PTR fl;

	/* C_GetFunctionList */
	EXPECT(p11->C_GetFunctionList(NULL), CKR_ARGUMENTS_BAD);
	MUST(p11->C_GetFunctionList(&fl));
	CHECK(fl == p11, "C_GetFunctionList answers different lists");
	CHECK(p11->version.major == 2 && p11->version.minor == 40, "2.40 list version %d.%d", p11->version.major,
	      p11->version.minor);
	CHECK(p3->version.major == 3 && p3->version.minor == 0, "3.0 list version %d.%d", p3->version.major,
	      p3->version.minor);
	check_list(p11, N_240, "CK_FUNCTION_LIST");
	check_list(p3, N_30, "CK_FUNCTION_LIST_3_0");

	/* C_GetInterfaceList: count query, too small, enough */
	EXPECT(p3->C_GetInterfaceList(NULL, NULL), CKR_ARGUMENTS_BAD);
	n = 0;
	EXPECT(p3->C_GetInterfaceList(NULL, &n), CKR_OK);
	CHECK(n == 2, "%lu interfaces, want 2", n);
	n = 1;
	EXPECT(p3->C_GetInterfaceList(list, &n), CKR_BUFFER_TOO_SMALL);
	CHECK(n == 2, "BUFFER_TOO_SMALL count %lu, want 2", n);
	n = 4;
	EXPECT(p3->C_GetInterfaceList(list, &n), CKR_OK);
	CHECK(n == 2, "%lu interfaces, want 2", n);
	for (CK_ULONG i = 0; i < n && i < 4; i++) {
		CK_VERSION *v = list[i].pFunctionList;
		CHECK(strcmp((char *)list[i].pInterfaceName, "PKCS 11") == 0, "interface %lu name %s", i,
		      (char *)list[i].pInterfaceName);
		CHECK(list[i].flags == 0, "interface %lu flags %lx (the module is not fork-safe)", i, list[i].flags);
		CHECK((i == 0 && v->major == 3 && v->minor == 0) || (i == 1 && v->major == 2 && v->minor == 40),
		      "interface %lu version %d.%d", i, v->major, v->minor);
	}

	/* C_GetInterface */
	EXPECT(p3->C_GetInterface(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
	MUST(p3->C_GetInterface(NULL, NULL, &in, 0));
	CHECK(in->pFunctionList == p3, "the default interface is not 3.0");
	MUST(p3->C_GetInterface((CK_UTF8CHAR_PTR) "PKCS 11", &(CK_VERSION){2, 40}, &in, 0));
	CHECK(in->pFunctionList == p11, "interface 2.40 is not C_GetFunctionList's");
	EXPECT(p3->C_GetInterface((CK_UTF8CHAR_PTR) "PKCS 11", &(CK_VERSION){3, 1}, &in, 0), CKR_ARGUMENTS_BAD);
	EXPECT(p3->C_GetInterface((CK_UTF8CHAR_PTR) "Vendor", NULL, &in, 0), CKR_ARGUMENTS_BAD);
	EXPECT(p3->C_GetInterface(NULL, NULL, &in, CKF_INTERFACE_FORK_SAFE), CKR_ARGUMENTS_BAD);
}

/* Application mutex callbacks; the module uses its own locks and must
 * never call them. */
static CK_RV no_create(CK_VOID_PTR_PTR m)
{
	(void)m;
	fail(__FILE__, __LINE__, "CreateMutex called");
	return CKR_GENERAL_ERROR;
}
static CK_RV no_mutex(CK_VOID_PTR m)
{
	(void)m;
	fail(__FILE__, __LINE__, "a mutex callback was called");
	return CKR_GENERAL_ERROR;
}

static void abi_initialize(void)
{
	CK_C_INITIALIZE_ARGS a;

	/* illegal arguments */
	memset(&a, 0, sizeof(a));
	a.pReserved = &a;
	EXPECT(p11->C_Initialize(&a), CKR_ARGUMENTS_BAD);
	memset(&a, 0, sizeof(a));
	a.CreateMutex = no_create;
	a.LockMutex = no_mutex;
	EXPECT(p11->C_Initialize(&a), CKR_ARGUMENTS_BAD);
	all_functions(CKR_CRYPTOKI_NOT_INITIALIZED);
	/* GnuTLS passes CKF_LIBRARY_CANT_CREATE_OS_THREADS with OS locking:
	 * accepted (the Go runtime's threads exist from load time). */
	memset(&a, 0, sizeof(a));
	a.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK;
	MUST(p11->C_Initialize(&a));
	MUST(p11->C_Finalize(NULL));
	all_functions(CKR_CRYPTOKI_NOT_INITIALIZED);

	/* every legal combination (the callbacks are never called) */
	for (int mutexes = 0; mutexes < 2; mutexes++) {
		for (int locking = 0; locking < 2; locking++) {
			memset(&a, 0, sizeof(a));
			if (mutexes) {
				a.CreateMutex = no_create;
				a.DestroyMutex = no_mutex;
				a.LockMutex = no_mutex;
				a.UnlockMutex = no_mutex;
			}
			a.flags = locking ? CKF_OS_LOCKING_OK : 0;
			EXPECT(p11->C_Initialize(&a), CKR_OK);
			EXPECT(p11->C_Initialize(&a), CKR_CRYPTOKI_ALREADY_INITIALIZED);
			EXPECT(p11->C_Finalize(&a), CKR_ARGUMENTS_BAD);
			EXPECT(p11->C_Finalize(NULL), CKR_OK);
		}
	}
	EXPECT(p11->C_Initialize(NULL), CKR_OK);
	EXPECT(p11->C_Finalize(NULL), CKR_OK);
	EXPECT(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
}

static void abi_info_slots(void)
{
	CK_INFO info;
	CK_SLOT_ID slots[4];
	CK_ULONG n;
	CK_SLOT_INFO si;
	CK_TOKEN_INFO ti;
	CK_MECHANISM_TYPE mechs[64];
	CK_MECHANISM_INFO mi;
	CK_SLOT_ID ev;
	int rsa = 0, pss = 0, ecdsa = 0;

	EXPECT(p11->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
	memset(&info, 0, sizeof(info));
	MUST(p11->C_GetInfo(&info));
	CHECK(info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40, "cryptokiVersion %d.%d",
	      info.cryptokiVersion.major, info.cryptokiVersion.minor);
	CHECK_FIXED(info.manufacturerID);
	CHECK_FIXED(info.libraryDescription);
	CHECK(memcmp(info.manufacturerID, "csctoken ", 9) == 0, "manufacturerID %.32s", info.manufacturerID);

	/* two services in the test's config: slots 0 and 1 */
	EXPECT(p11->C_GetSlotList(CK_TRUE, NULL, NULL), CKR_ARGUMENTS_BAD);
	n = 99;
	EXPECT(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	CHECK(n == 2, "%lu slots, want 2", n);
	n = 1;
	EXPECT(p11->C_GetSlotList(CK_FALSE, slots, &n), CKR_BUFFER_TOO_SMALL);
	CHECK(n == 2, "BUFFER_TOO_SMALL count %lu, want 2", n);
	n = 4;
	EXPECT(p11->C_GetSlotList(CK_FALSE, slots, &n), CKR_OK);
	CHECK(n == 2 && slots[0] == 0 && slots[1] == 1, "slots %lu: %lu %lu", n, slots[0], slots[1]);

	EXPECT(p11->C_GetSlotInfo(0, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_GetSlotInfo(7, &si), CKR_SLOT_ID_INVALID);
	MUST(p11->C_GetSlotInfo(0, &si));
	CHECK_FIXED(si.slotDescription);
	CHECK_FIXED(si.manufacturerID);
	CHECK(si.flags & CKF_TOKEN_PRESENT, "slot flags %lx", si.flags);

	EXPECT(p11->C_GetTokenInfo(0, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_GetTokenInfo(7, &ti), CKR_SLOT_ID_INVALID);
	memset(&ti, 0, sizeof(ti));
	MUST(p11->C_GetTokenInfo(1, &ti));
	CHECK_FIXED(ti.label);
	CHECK_FIXED(ti.manufacturerID);
	CHECK_FIXED(ti.model);
	CHECK_FIXED(ti.serialNumber);
	CHECK_FIXED(ti.utcTime);
	CHECK(memcmp(ti.label, "Beta ", 5) == 0 && ti.label[31] == ' ', "label %.32s", ti.label);
	CHECK((ti.flags & (CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED | CKF_WRITE_PROTECTED |
			   CKF_USER_PIN_INITIALIZED)) ==
		      (CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED | CKF_WRITE_PROTECTED | CKF_USER_PIN_INITIALIZED),
	      "token flags %lx", ti.flags);
	CHECK(ti.ulTotalPublicMemory == CK_UNAVAILABLE_INFORMATION &&
		      ti.ulFreePrivateMemory == CK_UNAVAILABLE_INFORMATION,
	      "memory fields %lx %lx", ti.ulTotalPublicMemory, ti.ulFreePrivateMemory);
	CHECK(ti.ulSessionCount == 0 && ti.ulMaxPinLen > 0, "sessions %lu max PIN %lu", ti.ulSessionCount,
	      ti.ulMaxPinLen);

	EXPECT(p11->C_GetMechanismList(0, NULL, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_GetMechanismList(7, NULL, &n), CKR_SLOT_ID_INVALID);
	MUST(p11->C_GetMechanismList(0, NULL, &n));
	CHECK(n > 4 && n <= 64, "%lu mechanisms", n);
	CK_ULONG want = n;
	n = 2;
	EXPECT(p11->C_GetMechanismList(0, mechs, &n), CKR_BUFFER_TOO_SMALL);
	CHECK(n == want, "BUFFER_TOO_SMALL count %lu, want %lu", n, want);
	n = 64;
	MUST(p11->C_GetMechanismList(0, mechs, &n));
	CHECK(n == want, "%lu mechanisms, want %lu", n, want);
	for (CK_ULONG i = 0; i < n && i < 64; i++) {
		rsa |= mechs[i] == CKM_SHA256_RSA_PKCS;
		pss |= mechs[i] == CKM_RSA_PKCS_PSS;
		ecdsa |= mechs[i] == CKM_ECDSA;
	}
	CHECK(rsa && pss && ecdsa, "mechanisms: SHA256_RSA_PKCS %d RSA_PKCS_PSS %d ECDSA %d", rsa, pss, ecdsa);
	EXPECT(p11->C_GetMechanismInfo(0, CKM_ECDSA, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_GetMechanismInfo(0, CKM_AES_CBC, &mi), CKR_MECHANISM_INVALID);
	MUST(p11->C_GetMechanismInfo(0, CKM_ECDSA, &mi));
	CHECK((mi.flags & CKF_SIGN) && mi.ulMinKeySize == 256, "ECDSA info flags %lx min %lu", mi.flags,
	      mi.ulMinKeySize);
	MUST(p11->C_GetMechanismInfo(0, CKM_SHA256_RSA_PKCS, &mi));
	CHECK(mi.ulMinKeySize == 2048 && mi.ulMaxKeySize == 2048, "RSA key sizes %lu..%lu", mi.ulMinKeySize,
	      mi.ulMaxKeySize);

	EXPECT(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, &ev), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL), CKR_NO_EVENT);
	EXPECT(p11->C_WaitForSlotEvent(0, &ev, NULL), CKR_FUNCTION_NOT_SUPPORTED);
	EXPECT(p11->C_InitToken(0, (CK_UTF8CHAR_PTR) "0000", 4, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_InitToken(0, (CK_UTF8CHAR_PTR) "0000", 4, (CK_UTF8CHAR_PTR) "label                           "),
	       CKR_TOKEN_WRITE_PROTECTED);
}

static void abi_sessions(void)
{
	CK_SESSION_HANDLE ro, rw, h;
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;

	EXPECT(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_OpenSession(0, 0, NULL, NULL, &h), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	EXPECT(p11->C_OpenSession(9, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_SLOT_ID_INVALID);
	ro = open_session(0, 0);
	rw = open_session(0, 1);
	EXPECT(p11->C_GetSessionInfo(ro, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_GetSessionInfo(12345, &si), CKR_SESSION_HANDLE_INVALID);
	MUST(p11->C_GetSessionInfo(ro, &si));
	CHECK(si.state == CKS_RO_PUBLIC_SESSION && si.slotID == 0 && si.flags == CKF_SERIAL_SESSION,
	      "RO session: state %lu slot %lu flags %lx", si.state, si.slotID, si.flags);
	MUST(p11->C_GetSessionInfo(rw, &si));
	CHECK(si.state == CKS_RW_PUBLIC_SESSION && si.flags == (CKF_SERIAL_SESSION | CKF_RW_SESSION),
	      "RW session: state %lu flags %lx", si.state, si.flags);
	MUST(p11->C_GetTokenInfo(0, &ti));
	CHECK(ti.ulSessionCount == 2 && ti.ulRwSessionCount == 1, "session counts %lu %lu", ti.ulSessionCount,
	      ti.ulRwSessionCount);
	EXPECT(p11->C_CloseSession(12345), CKR_SESSION_HANDLE_INVALID);
	MUST(p11->C_CloseSession(ro));
	EXPECT(p11->C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
	EXPECT(p11->C_CloseAllSessions(9), CKR_SLOT_ID_INVALID);
	MUST(p11->C_CloseAllSessions(0));
	EXPECT(p11->C_GetSessionInfo(rw, &si), CKR_SESSION_HANDLE_INVALID);
	EXPECT(p11->C_GetFunctionStatus(open_session(0, 0)), CKR_FUNCTION_NOT_PARALLEL);
	MUST(p11->C_CloseAllSessions(0));
}

static void abi_objects(CK_SESSION_HANDLE h)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY, got_cls = 0;
	CK_OBJECT_HANDLE objs[16], key;
	CK_ULONG n;
	CK_BBOOL yes = CK_TRUE;
	unsigned char label[1], id[64], mod[512];
	CK_ATTRIBUTE t[5];
	CK_ATTRIBUTE bad = {CKA_CLASS, NULL, 8};
	CK_ULONG size;

	/* Before login: certificates, public keys and the profile, no private key. */
	CHECK(find(h, CKO_PRIVATE_KEY, NULL, objs, 16) == 0, "private keys visible before login");
	CHECK(find(h, CKO_CERTIFICATE, NULL, objs, 16) >= 2, "certificates not visible before login");

	EXPECT(p11->C_FindObjectsInit(h, NULL, 1), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_FindObjectsInit(h, &bad, 1), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_FindObjects(h, objs, 16, &n), CKR_OPERATION_NOT_INITIALIZED);
	EXPECT(p11->C_FindObjectsFinal(h), CKR_OPERATION_NOT_INITIALIZED);

	EXPECT(p11->C_Login(h, CKU_USER, NULL, 4), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "wrong-pin", 9), CKR_PIN_INCORRECT);
	EXPECT(p11->C_Login(h, 77, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_USER_TYPE_INVALID);
	login(h);
	EXPECT(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_USER_ALREADY_LOGGED_IN);

	t[0] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
	MUST(p11->C_FindObjectsInit(h, t, 1));
	EXPECT(p11->C_FindObjectsInit(h, t, 1), CKR_OPERATION_ACTIVE);
	EXPECT(p11->C_FindObjects(h, NULL, 16, &n), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_FindObjects(h, objs, 16, NULL), CKR_ARGUMENTS_BAD);
	/* one at a time */
	MUST(p11->C_FindObjects(h, objs, 1, &n));
	CHECK(n == 1, "first C_FindObjects: %lu", n);
	MUST(p11->C_FindObjects(h, objs + 1, 16, &n));
	CHECK(n == 1, "second C_FindObjects: %lu (want the other key)", n);
	MUST(p11->C_FindObjects(h, objs + 2, 16, &n));
	CHECK(n == 0, "third C_FindObjects: %lu", n);
	MUST(p11->C_FindObjectsFinal(h));

	key = find1(h, CKO_PRIVATE_KEY, "Key rsa2048");

	/* C_GetAttributeValue: valid, sensitive, invalid type, too small, length query */
	t[0] = (CK_ATTRIBUTE){CKA_CLASS, &got_cls, sizeof(got_cls)};
	t[1] = (CK_ATTRIBUTE){CKA_PRIVATE_EXPONENT, mod, sizeof(mod)};
	t[2] = (CK_ATTRIBUTE){0x7ffffff0UL, mod, sizeof(mod)};
	t[3] = (CK_ATTRIBUTE){CKA_LABEL, label, sizeof(label)};
	t[4] = (CK_ATTRIBUTE){CKA_ID, NULL, 0};
	CK_RV rv = p11->C_GetAttributeValue(h, key, t, 5);
	CHECK(rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_BUFFER_TOO_SMALL,
	      "mixed template: %s", rvname(rv));
	CHECK(t[0].ulValueLen == sizeof(CK_OBJECT_CLASS) && got_cls == CKO_PRIVATE_KEY, "CKA_CLASS %lu len %lu",
	      got_cls, t[0].ulValueLen);
	CHECK(t[1].ulValueLen == CK_UNAVAILABLE_INFORMATION, "sensitive attribute length %lx", t[1].ulValueLen);
	CHECK(t[2].ulValueLen == CK_UNAVAILABLE_INFORMATION, "invalid attribute length %lx", t[2].ulValueLen);
	CHECK(t[3].ulValueLen == CK_UNAVAILABLE_INFORMATION, "too small attribute length %lx", t[3].ulValueLen);
	CHECK(t[4].ulValueLen == 20, "CKA_ID length query %lu, want 20", t[4].ulValueLen);

	t[0] = (CK_ATTRIBUTE){CKA_ID, id, sizeof(id)};
	t[1] = (CK_ATTRIBUTE){0x7ffffff0UL, NULL, 0};
	EXPECT(p11->C_GetAttributeValue(h, key, t, 2), CKR_ATTRIBUTE_TYPE_INVALID);
	CHECK(t[0].ulValueLen == 20 && t[1].ulValueLen == CK_UNAVAILABLE_INFORMATION, "lengths %lu %lx",
	      t[0].ulValueLen, t[1].ulValueLen);
	t[0] = (CK_ATTRIBUTE){CKA_LABEL, label, sizeof(label)};
	EXPECT(p11->C_GetAttributeValue(h, key, t, 1), CKR_BUFFER_TOO_SMALL);
	CHECK(t[0].ulValueLen == CK_UNAVAILABLE_INFORMATION, "too small: length %lx", t[0].ulValueLen);
	t[0] = (CK_ATTRIBUTE){CKA_SENSITIVE, &yes, 1};
	EXPECT(p11->C_GetAttributeValue(h, key, t, 1), CKR_OK);
	EXPECT(p11->C_GetAttributeValue(h, key, NULL, 1), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_GetAttributeValue(h, key, NULL, 0), CKR_OK);
	t[0] = (CK_ATTRIBUTE){CKA_ID, id, 77};
	EXPECT(p11->C_GetAttributeValue(h, 999999, t, 1), CKR_OBJECT_HANDLE_INVALID);
	CHECK(t[0].ulValueLen == 77, "length changed on CKR_OBJECT_HANDLE_INVALID");
	EXPECT(p11->C_GetObjectSize(h, key, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_GetObjectSize(h, key, &size), CKR_OK);

	/* the token is write-protected */
	t[0] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, 1};
	EXPECT(p11->C_CreateObject(h, t, 1, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_CreateObject(h, t, 1, objs), CKR_TOKEN_WRITE_PROTECTED);
	EXPECT(p11->C_DestroyObject(h, key), CKR_TOKEN_WRITE_PROTECTED);
	EXPECT(p11->C_SetAttributeValue(h, key, t, 1), CKR_TOKEN_WRITE_PROTECTED);
	EXPECT(p11->C_GenerateKeyPair(h, &(CK_MECHANISM){CKM_EC_KEY_PAIR_GEN, NULL, 0}, t, 1, t, 1, objs, objs + 1),
	       CKR_TOKEN_WRITE_PROTECTED);
	EXPECT(p11->C_GenerateKeyPair(h, NULL, t, 1, t, 1, objs, objs + 1), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_SetPIN(h, (CK_UTF8CHAR_PTR) "a", 1, (CK_UTF8CHAR_PTR) "b", 1), CKR_TOKEN_WRITE_PROTECTED);
}

static void abi_sign(CK_SESSION_HANDLE h)
{
	static const unsigned char msg[] = "the quick brown fox";
	unsigned char hash[32];
	CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
	CK_MECHANISM m_pkcs = {CKM_SHA256_RSA_PKCS, NULL, 0};
	CK_MECHANISM m_pss = {CKM_RSA_PKCS_PSS, &pss, sizeof(pss)};
	CK_MECHANISM m_pss_sha = {CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof(pss)};
	CK_MECHANISM m_ecdsa = {CKM_ECDSA, NULL, 0};
	CK_MECHANISM m_ecdsa_sha = {CKM_ECDSA_SHA256, NULL, 0};
	CK_OBJECT_HANDLE key = find1(h, CKO_PRIVATE_KEY, "Key rsa2048");
	unsigned char out[512];
	CK_ULONG len;

	/* digest: known answer and the length conventions */
	static const unsigned char abc_sha256[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	MUST(p11->C_DigestInit(h, &(CK_MECHANISM){CKM_SHA256, NULL, 0}));
	EXPECT(p11->C_Digest(h, (CK_BYTE_PTR) "abc", 3, NULL, &len), CKR_OK);
	CHECK(len == 32, "digest size query %lu", len);
	len = 31;
	EXPECT(p11->C_Digest(h, (CK_BYTE_PTR) "abc", 3, out, &len), CKR_BUFFER_TOO_SMALL);
	CHECK(len == 32, "digest BUFFER_TOO_SMALL length %lu", len);
	len = sizeof(out);
	EXPECT(p11->C_Digest(h, (CK_BYTE_PTR) "abc", 3, out, &len), CKR_OK);
	CHECK(len == 32 && memcmp(out, abc_sha256, 32) == 0, "SHA-256(abc) is wrong");
	sha256(h, msg, sizeof(msg) - 1, hash);

	/* argument and mechanism checks */
	EXPECT(p11->C_SignInit(h, &(CK_MECHANISM){CKM_RSA_PKCS_PSS, NULL, 24}, key), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_SignInit(h, &(CK_MECHANISM){CKM_RSA_PKCS_PSS, &pss, 8}, key), CKR_MECHANISM_PARAM_INVALID);
	EXPECT(p11->C_SignInit(h, &m_ecdsa, key), CKR_KEY_TYPE_INCONSISTENT);
	EXPECT(p11->C_SignInit(h, &m_pkcs, 999999), CKR_KEY_HANDLE_INVALID);
	EXPECT(p11->C_Sign(h, (CK_BYTE_PTR)msg, 3, out, &len), CKR_OPERATION_NOT_INITIALIZED);

	sign_verify(h, &m_pkcs, "CKM_SHA256_RSA_PKCS", "Key rsa2048", msg, sizeof(msg) - 1, 256, 1);
	sign_verify(h, &m_pss, "CKM_RSA_PKCS_PSS", "Key rsa2048", hash, 32, 256, 1);
	sign_verify(h, &m_pss_sha, "CKM_SHA256_RSA_PKCS_PSS", "Key rsa2048", msg, sizeof(msg) - 1, 256, 1);
	sign_verify(h, &m_ecdsa, "CKM_ECDSA", "Key p256", hash, 32, 64, 1);
	sign_verify(h, &m_ecdsa_sha, "CKM_ECDSA_SHA256", "Key p256", msg, sizeof(msg) - 1, 64, 1);
	print_cert(h, "Key rsa2048");
	print_cert(h, "Key p256");

	/* multi-part, with SignFinal's length conventions */
	MUST(p11->C_SignInit(h, &m_pkcs, key));
	EXPECT(p11->C_SignUpdate(h, NULL, 5), CKR_ARGUMENTS_BAD);
	MUST(p11->C_SignUpdate(h, (CK_BYTE_PTR)msg, 4));
	MUST(p11->C_SignUpdate(h, (CK_BYTE_PTR)msg + 4, sizeof(msg) - 5));
	EXPECT(p11->C_SignFinal(h, NULL, &len), CKR_OK);
	CHECK(len == 256, "SignFinal size query %lu", len);
	len = sizeof(out);
	MUST(p11->C_SignFinal(h, out, &len));
	MUST(p11->C_VerifyInit(h, &m_pkcs, find1(h, CKO_PUBLIC_KEY, "Key rsa2048")));
	MUST(p11->C_VerifyUpdate(h, (CK_BYTE_PTR)msg, sizeof(msg) - 1));
	EXPECT(p11->C_VerifyFinal(h, out, len), CKR_OK);
	printf("SIG CKM_SHA256_RSA_PKCS Key rsa2048 ");
	hex(stdout, msg, sizeof(msg) - 1);
	putchar(' ');
	hex(stdout, out, len);
	putchar('\n');

	/* random */
	EXPECT(p11->C_GenerateRandom(h, NULL, 16), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_GenerateRandom(h, out, 32), CKR_OK);
	EXPECT(p11->C_SeedRandom(h, out, 32), CKR_RANDOM_SEED_NOT_SUPPORTED);

	/* not offered */
	EXPECT(p11->C_EncryptInit(h, &m_pkcs, key), CKR_FUNCTION_NOT_SUPPORTED);
	EXPECT(p11->C_DecryptInit(h, &m_pkcs, key), CKR_FUNCTION_NOT_SUPPORTED);
	EXPECT(p11->C_SignRecoverInit(h, &m_pkcs, key), CKR_FUNCTION_NOT_SUPPORTED);
	EXPECT(p11->C_GetOperationState(h, NULL, &len), CKR_FUNCTION_NOT_SUPPORTED);
	EXPECT(p11->C_WrapKey(h, &m_pkcs, key, key, NULL, &len), CKR_FUNCTION_NOT_SUPPORTED);
	EXPECT(p3->C_MessageSignInit(h, &m_pkcs, key), CKR_FUNCTION_NOT_SUPPORTED);
	/* C_SessionCancel ends an operation; none active is fine too. */
	MUST(p11->C_SignInit(h, &m_pkcs, key));
	EXPECT(p3->C_SessionCancel(h, CKF_SIGN | CKF_VERIFY | CKF_DIGEST), CKR_OK);
	EXPECT(p11->C_Sign(h, (CK_BYTE_PTR)msg, 3, NULL, &len), CKR_OPERATION_NOT_INITIALIZED);
	EXPECT(p3->C_SessionCancel(h, CKF_SIGN), CKR_OK);
	EXPECT(p3->C_SessionCancel(CK_INVALID_HANDLE, CKF_SIGN), CKR_SESSION_HANDLE_INVALID);
}

static int cmd_abi(void)
{
	CK_SESSION_HANDLE h;
	CK_SESSION_INFO si;

	abi_lists();
	all_functions(CKR_CRYPTOKI_NOT_INITIALIZED);
	abi_initialize();

	MUST(init_os_locking());
	abi_info_slots();
	abi_sessions();
	h = open_session(0, 1);
	abi_objects(h);
	MUST(p11->C_GetSessionInfo(h, &si));
	CHECK(si.state == CKS_RW_USER_FUNCTIONS, "state after login %lu", si.state);
	abi_sign(h);

	/* logout, C_LoginUser (the user name is ignored), logout */
	MUST(p11->C_Logout(h));
	EXPECT(p11->C_Logout(h), CKR_USER_NOT_LOGGED_IN);
	EXPECT(p3->C_LoginUser(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin), NULL, 3), CKR_ARGUMENTS_BAD);
	EXPECT(p3->C_LoginUser(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin), (CK_UTF8CHAR_PTR) "alice", 5),
	       CKR_OK);
	MUST(p11->C_Logout(h));

	/* finalize: everything is CKR_CRYPTOKI_NOT_INITIALIZED again */
	EXPECT(p11->C_Finalize(&h), CKR_ARGUMENTS_BAD);
	MUST(p11->C_Finalize(NULL));
	all_functions(CKR_CRYPTOKI_NOT_INITIALIZED);

	/* and a second life works, with fresh sessions */
	MUST(p11->C_Initialize(NULL));
	EXPECT(p11->C_GetSessionInfo(h, &si), CKR_SESSION_HANDLE_INVALID);
	h = open_session(1, 0);
	login(h);
	sign_verify(h, &(CK_MECHANISM){CKM_ECDSA_SHA256, NULL, 0}, "CKM_ECDSA_SHA256", "Key p256",
		    (const unsigned char *)"again", 5, 64, 1);
	MUST(p11->C_Finalize(NULL));
	return 0;
}

/* ---- fork ------------------------------------------------------------------ */

static int child_checks(CK_SESSION_HANDLE parent_session, const CK_INFO *parent_info)
{
	CK_INFO info;
	CK_ULONG n = 7;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE h;
	unsigned char sig[512];
	CK_ULONG len = sizeof(sig);
	CK_C_INITIALIZE_ARGS bad = {0};
	pid_t grandchild;
	int st;

	/* Not initialized in the child, whatever the parent did. */
	EXPECT(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	EXPECT(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
	EXPECT(p11->C_Sign(parent_session, (CK_BYTE_PTR) "x", 1, sig, &len), CKR_CRYPTOKI_NOT_INITIALIZED);
	EXPECT(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	all_functions(CKR_CRYPTOKI_NOT_INITIALIZED);
	/* Static entry points still work. */
	CK_FUNCTION_LIST_PTR fl;
	EXPECT(p11->C_GetFunctionList(&fl), CKR_OK);
	n = 0;
	EXPECT(p3->C_GetInterfaceList(NULL, &n), CKR_OK);

	/* An empty module once initialized. */
	bad.pReserved = &bad;
	EXPECT(p11->C_Initialize(&bad), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_Initialize(NULL), CKR_OK);
	EXPECT(p11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	EXPECT(p11->C_GetInfo(&info), CKR_OK);
	CHECK(memcmp(&info, parent_info, sizeof(info)) == 0, "the child's CK_INFO differs from the parent's");
	EXPECT(p11->C_GetSlotList(CK_TRUE, NULL, NULL), CKR_ARGUMENTS_BAD);
	n = 7;
	EXPECT(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	CHECK(n == 0, "%lu slots in the child", n);
	n = 7;
	EXPECT(p11->C_GetSlotList(CK_FALSE, &slot, &n), CKR_OK);
	CHECK(n == 0, "%lu slots in the child", n);
	EXPECT(p11->C_GetTokenInfo(0, &ti), CKR_SLOT_ID_INVALID);
	EXPECT(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_SLOT_ID_INVALID);
	EXPECT(p11->C_Sign(parent_session, (CK_BYTE_PTR) "x", 1, sig, &len), CKR_SESSION_HANDLE_INVALID);
	EXPECT(p11->C_EncryptInit(parent_session, NULL, 0), CKR_FUNCTION_NOT_SUPPORTED);
	EXPECT(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL), CKR_NO_EVENT);

	/* A grandchild starts uninitialized again. */
	grandchild = fork();
	if (grandchild == 0) {
		int bad_rv = p11->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_CRYPTOKI_NOT_INITIALIZED;
		bad_rv |= p11->C_Initialize(NULL) != CKR_OK;
		bad_rv |= p11->C_Finalize(NULL) != CKR_OK;
		_exit(bad_rv);
	}
	CHECK(waitpid(grandchild, &st, 0) == grandchild && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "grandchild failed: status %x", st);

	EXPECT(p11->C_Finalize(&bad), CKR_ARGUMENTS_BAD);
	EXPECT(p11->C_Finalize(NULL), CKR_OK);
	EXPECT(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	EXPECT(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	return atomic_load(&failures) ? 1 : 0;
}

static void wait_child(pid_t pid, double limit, const char *what)
{
	double start = now();
	int st = 0;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (now() - start > limit) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail(__FILE__, __LINE__, "%s: child hung for %.0fs", what, limit);
			return;
		}
		usleep(10000);
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child status %x", what, st);
	fprintf(stderr, "%s: child done in %.3fs\n", what, now() - start);
}

static int cmd_fork(void)
{
	CK_SESSION_HANDLE h;
	CK_INFO info;
	pid_t pid;

	/* A fork before the parent initializes. */
	pid = fork();
	if (pid == 0)
		exit(p11->C_Initialize(NULL) == CKR_OK && p11->C_Finalize(NULL) == CKR_OK ? 0 : 1);
	wait_child(pid, 10, "fork before C_Initialize");

	MUST(init_os_locking());
	MUST(p11->C_GetInfo(&info));
	h = open_session(0, 0);
	login(h);
	sign_verify(h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS, NULL, 0}, "CKM_SHA256_RSA_PKCS", "Key rsa2048",
		    (const unsigned char *)"before fork", 11, 256, 0);

	/* A fork with an operation active in the parent. */
	MUST(p11->C_SignInit(h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS, NULL, 0}, find1(h, CKO_PRIVATE_KEY, "Key rsa2048")));
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		exit(child_checks(h, &info)); /* exit(), not _exit(): atexit handlers run too */
	wait_child(pid, 10, "fork after C_Initialize");

	/* The parent is unaffected. */
	unsigned char sig[512];
	CK_ULONG len = sizeof(sig);
	EXPECT(p11->C_Sign(h, (CK_BYTE_PTR) "after fork", 10, sig, &len), CKR_OK);
	sign_verify(h, &(CK_MECHANISM){CKM_ECDSA_SHA256, NULL, 0}, "CKM_ECDSA_SHA256", "Key p256",
		    (const unsigned char *)"after fork", 10, 64, 0);
	MUST(p11->C_Finalize(NULL));
	return 0;
}

/* ---- threads --------------------------------------------------------------- */

#define THREADS 8
#define ROUNDS 6

static atomic_int signatures;

static void *signer(void *arg)
{
	long i = (long)arg;
	CK_SESSION_HANDLE h = open_session(i % 2, i % 3 == 0);
	for (int r = 0; r < ROUNDS; r++) {
		char msg[64];
		int ec = (i + r) % 2;
		snprintf(msg, sizeof(msg), "thread %ld round %d", i, r);
		sign_verify(h, &(CK_MECHANISM){ec ? CKM_ECDSA_SHA256 : CKM_SHA256_RSA_PKCS, NULL, 0},
			    ec ? "CKM_ECDSA_SHA256" : "CKM_SHA256_RSA_PKCS", ec ? "Key p256" : "Key rsa2048",
			    (const unsigned char *)msg, strlen(msg), ec ? 64 : 256, 0);
		atomic_fetch_add(&signatures, 1);
	}
	MUST(p11->C_CloseSession(h));
	return NULL;
}

/* metadata runs alongside: NSS-style polling. */
static atomic_int stop_meta;
static void *metadata(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_meta)) {
		CK_TOKEN_INFO ti;
		CK_SLOT_ID slots[2];
		CK_ULONG n = 2;
		MUST(p11->C_GetSlotList(CK_TRUE, slots, &n));
		MUST(p11->C_GetTokenInfo(slots[0], &ti));
	}
	return NULL;
}

static int cmd_threads(void)
{
	pthread_t t[THREADS], meta;
	CK_SESSION_HANDLE h;
	double start;

	MUST(init_os_locking());
	/* Log in to both slots (login state is per token). */
	h = open_session(0, 0);
	login(h);
	CK_SESSION_HANDLE h1 = open_session(1, 0);
	login(h1);
	start = now();
	pthread_create(&meta, NULL, metadata, NULL);
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, signer, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop_meta, 1);
	pthread_join(meta, NULL);
	CHECK(atomic_load(&signatures) == THREADS * ROUNDS, "%d signatures", atomic_load(&signatures));
	fprintf(stderr, "threads: %d signatures in %.2fs\n", atomic_load(&signatures), now() - start);
	MUST(p11->C_Finalize(NULL));
	return 0;
}

/* ---- finalize while signing ------------------------------------------------ */

struct pending {
	CK_SESSION_HANDLE h;
	CK_RV rv;
	double done;
};

static void *slow_sign(void *arg)
{
	struct pending *p = arg;
	unsigned char sig[512];
	CK_ULONG len = sizeof(sig);
	p->rv = p11->C_Sign(p->h, (CK_BYTE_PTR) "slow", 4, sig, &len);
	p->done = now();
	return NULL;
}

static void start_slow_sign(struct pending *p, pthread_t *t)
{
	MUST(p11->C_SignInit(p->h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS, NULL, 0},
			     find1(p->h, CKO_PRIVATE_KEY, "Key rsa2048")));
	pthread_create(t, NULL, slow_sign, p);
}

/* The fake service's signHash waits for $CSCTOKEN_FAKE_SIGN_DELAY (set by
 * the test to far longer than the limits here). */
static int cmd_finalize_while_signing(void)
{
	struct pending a = {0}, b = {0};
	pthread_t ta, tb;
	double t0, took;

	MUST(init_os_locking());
	a.h = open_session(0, 0);
	login(a.h);
	b.h = open_session(0, 0);

	/* C_CloseSession cancels a signature in flight on that session. */
	start_slow_sign(&b, &tb);
	usleep(300000);
	t0 = now();
	MUST(p11->C_CloseSession(b.h));
	pthread_join(tb, NULL);
	CHECK(b.rv == CKR_SESSION_CLOSED, "C_Sign on a closed session: %s", rvname(b.rv));
	CHECK(b.done - t0 < 2, "C_Sign returned %.2fs after C_CloseSession", b.done - t0);

	/* C_SessionCancel (3.0) cancels a signature in flight; the session
	 * stays open and signs again. */
	{
		struct pending c = {0};
		pthread_t tc;
		c.h = open_session(0, 0);
		start_slow_sign(&c, &tc);
		usleep(300000);
		t0 = now();
		MUST(p3->C_SessionCancel(c.h, CKF_SIGN));
		pthread_join(tc, NULL);
		CHECK(c.rv == CKR_FUNCTION_CANCELED, "C_Sign after C_SessionCancel: %s", rvname(c.rv));
		CHECK(c.done - t0 < 2, "C_Sign returned %.2fs after C_SessionCancel", c.done - t0);
		start_slow_sign(&c, &tc); /* C_SignInit works again */
		usleep(300000);
		MUST(p3->C_SessionCancel(c.h, CKF_SIGN));
		pthread_join(tc, NULL);
		CHECK(c.rv == CKR_FUNCTION_CANCELED, "second C_Sign after C_SessionCancel: %s", rvname(c.rv));
		MUST(p11->C_CloseSession(c.h));
	}

	/* C_Finalize returns promptly and cancels a signature in flight. */
	start_slow_sign(&a, &ta);
	usleep(300000);
	t0 = now();
	MUST(p11->C_Finalize(NULL));
	took = now() - t0;
	CHECK(took < 1, "C_Finalize took %.2fs while a C_Sign was waiting", took);
	pthread_join(ta, NULL);
	CHECK(a.rv == CKR_CRYPTOKI_NOT_INITIALIZED || a.rv == CKR_FUNCTION_CANCELED,
	      "C_Sign after C_Finalize: %s", rvname(a.rv));
	CHECK(a.done - t0 < 2, "C_Sign returned %.2fs after C_Finalize", a.done - t0);
	fprintf(stderr, "finalize-while-signing: C_Finalize %.3fs, C_Sign back after %.3fs\n", took, a.done - t0);

	/* The library is usable again. */
	MUST(p11->C_Initialize(NULL));
	CK_ULONG n = 0;
	MUST(p11->C_GetSlotList(CK_TRUE, NULL, &n));
	CHECK(n == 2, "%lu slots after re-initialization", n);
	MUST(p11->C_Finalize(NULL));
	return 0;
}

/* ---- atexit ----------------------------------------------------------------- */

static CK_SESSION_HANDLE exit_session;

static void at_exit(void)
{
	CK_RV r1 = p11->C_CloseSession(exit_session);
	CK_RV r2 = p11->C_Finalize(NULL);
	CK_RV r3 = p11->C_GetInfo(&(CK_INFO){0});
	printf("atexit: C_CloseSession=%s C_Finalize=%s C_GetInfo=%s\n", rvname(r1), rvname(r2), rvname(r3));
	fflush(stdout);
}

static int cmd_atexit(int busy)
{
	static struct pending p;
	pthread_t t;

	MUST(init_os_locking());
	exit_session = open_session(0, 0);
	login(exit_session);
	if (busy) {
		/* Another thread is inside the module, waiting on the service. */
		p.h = open_session(0, 0);
		start_slow_sign(&p, &t);
		usleep(300000);
	}
	atexit(at_exit);
	return 0; /* returning from main runs exit() */
}

/* ---- the shipped build ------------------------------------------------------ */

static int cmd_real(void)
{
	CK_ULONG n = 0;
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE h;

	abi_lists();
	all_functions(CKR_CRYPTOKI_NOT_INITIALIZED);
	MUST(init_os_locking());
	MUST(p11->C_GetSlotList(CK_TRUE, NULL, &n));
	CHECK(n == 1, "%lu slots, want 1", n);
	MUST(p11->C_GetTokenInfo(0, &ti));
	CHECK_FIXED(ti.label);
	CHECK(memcmp(ti.label, "Real ", 5) == 0, "label %.32s", ti.label);
	h = open_session(0, 1);
	/* Nobody ran `csctoken login` for this service: the module cannot
	 * authenticate to it, so the program is told the user is not logged in. */
	EXPECT(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4), CKR_USER_NOT_LOGGED_IN);
	MUST(p11->C_Finalize(NULL));
	all_functions(CKR_CRYPTOKI_NOT_INITIALIZED);
	return 0;
}

/* ---- lifecycle CASE: the operation lifecycle through the C ABI ----------
 * PKCS#11 2.40 §5.2: C_Digest, C_DigestFinal, C_Sign, C_SignFinal, C_Verify
 * and C_VerifyFinal end the active operation unless they answer a length
 * query or CKR_BUFFER_TOO_SMALL, arguments the library refuses included;
 * 3.0 §5.11-5.13: *Init with a NULL mechanism ends it. cabi_test.go's
 * TestOperationLifecycleCABI names the cases; each one ends with the
 * operation over (the probe answers CKR_OPERATION_NOT_INITIALIZED). */

#define LC_OVER(call) EXPECT(call, CKR_OPERATION_NOT_INITIALIZED)

static int cmd_lifecycle(const char *name)
{
	static const char msg[] = "lifecycle";
	CK_MECHANISM sha256 = {CKM_SHA256, NULL, 0};
	CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE priv, pub;
	unsigned char out[512], sig[64];
	CK_ULONG len = sizeof(out), siglen = sizeof(sig);
	CK_BYTE_PTR m = (CK_BYTE_PTR)msg;
	CK_ULONG mlen = sizeof(msg) - 1;

	MUST(init_os_locking());
	h = open_session(0, 1);
	login(h);
	priv = find1(h, CKO_PRIVATE_KEY, "Key p256");
	pub = find1(h, CKO_PUBLIC_KEY, "Key p256");
	MUST(p11->C_SignInit(h, &ecdsa, priv));
	MUST(p11->C_Sign(h, m, mlen, sig, &siglen));

	if (strcmp(name, "digest-null-length") == 0) {
		MUST(p11->C_DigestInit(h, &sha256));
		EXPECT(p11->C_Digest(h, m, mlen, NULL, NULL), CKR_ARGUMENTS_BAD);
		LC_OVER(p11->C_Digest(h, m, mlen, NULL, &len));
	} else if (strcmp(name, "digest-null-data") == 0) {
		MUST(p11->C_DigestInit(h, &sha256));
		EXPECT(p11->C_Digest(h, NULL, mlen, out, &len), CKR_ARGUMENTS_BAD);
		LC_OVER(p11->C_Digest(h, m, mlen, NULL, &len));
	} else if (strcmp(name, "digestfinal-null-length") == 0) {
		MUST(p11->C_DigestInit(h, &sha256));
		MUST(p11->C_DigestUpdate(h, m, mlen));
		EXPECT(p11->C_DigestFinal(h, NULL, NULL), CKR_ARGUMENTS_BAD);
		LC_OVER(p11->C_DigestFinal(h, NULL, &len));
	} else if (strcmp(name, "sign-null-length") == 0) {
		MUST(p11->C_SignInit(h, &ecdsa, priv));
		EXPECT(p11->C_Sign(h, m, mlen, NULL, NULL), CKR_ARGUMENTS_BAD);
		LC_OVER(p11->C_Sign(h, m, mlen, NULL, &len));
	} else if (strcmp(name, "sign-null-data") == 0) {
		MUST(p11->C_SignInit(h, &ecdsa, priv));
		EXPECT(p11->C_Sign(h, NULL, mlen, out, &len), CKR_ARGUMENTS_BAD);
		LC_OVER(p11->C_Sign(h, m, mlen, NULL, &len));
	} else if (strcmp(name, "signfinal-null-length") == 0) {
		MUST(p11->C_SignInit(h, &ecdsa, priv));
		MUST(p11->C_SignUpdate(h, m, mlen));
		EXPECT(p11->C_SignFinal(h, NULL, NULL), CKR_ARGUMENTS_BAD);
		LC_OVER(p11->C_SignFinal(h, NULL, &len));
	} else if (strcmp(name, "verify-null-signature") == 0) {
		MUST(p11->C_VerifyInit(h, &ecdsa, pub));
		EXPECT(p11->C_Verify(h, m, mlen, NULL, siglen), CKR_ARGUMENTS_BAD);
		LC_OVER(p11->C_VerifyFinal(h, sig, siglen));
	} else if (strcmp(name, "verifyfinal-null-signature") == 0) {
		MUST(p11->C_VerifyInit(h, &ecdsa, pub));
		MUST(p11->C_VerifyUpdate(h, m, mlen));
		EXPECT(p11->C_VerifyFinal(h, NULL, siglen), CKR_ARGUMENTS_BAD);
		LC_OVER(p11->C_VerifyFinal(h, sig, siglen));
	} else if (strcmp(name, "digest-after-update") == 0) {
		MUST(p11->C_DigestInit(h, &sha256));
		MUST(p11->C_DigestUpdate(h, m, mlen));
		EXPECT(p11->C_Digest(h, m, mlen, out, &len), CKR_OPERATION_ACTIVE);
		LC_OVER(p11->C_DigestFinal(h, out, &len));
	} else if (strcmp(name, "sign-after-update") == 0) {
		MUST(p11->C_SignInit(h, &ecdsa, priv));
		MUST(p11->C_SignUpdate(h, m, mlen));
		EXPECT(p11->C_Sign(h, m, mlen, out, &len), CKR_OPERATION_ACTIVE);
		LC_OVER(p11->C_SignFinal(h, out, &len));
	} else if (strcmp(name, "verify-after-update") == 0) {
		MUST(p11->C_VerifyInit(h, &ecdsa, pub));
		MUST(p11->C_VerifyUpdate(h, m, mlen));
		EXPECT(p11->C_Verify(h, m, mlen, sig, siglen), CKR_OPERATION_ACTIVE);
		LC_OVER(p11->C_VerifyFinal(h, sig, siglen));
	} else if (strcmp(name, "digestfinal-after-length-query") == 0) {
		/* Once C_Digest began the operation, C_DigestFinal does not answer
		 * the digest of an empty input. */
		MUST(p11->C_DigestInit(h, &sha256));
		MUST(p11->C_Digest(h, m, mlen, NULL, &len));
		len = sizeof(out);
		EXPECT(p11->C_DigestFinal(h, out, &len), CKR_OPERATION_ACTIVE);
		LC_OVER(p11->C_DigestFinal(h, out, &len));
	} else if (strcmp(name, "signfinal-after-length-query") == 0) {
		MUST(p11->C_SignInit(h, &ecdsa, priv));
		MUST(p11->C_Sign(h, m, mlen, NULL, &len));
		len = sizeof(out);
		EXPECT(p11->C_SignFinal(h, out, &len), CKR_OPERATION_ACTIVE);
		LC_OVER(p11->C_SignFinal(h, out, &len));
	} else if (strcmp(name, "init-null-mechanism") == 0) {
		MUST(p11->C_DigestInit(h, &sha256));
		MUST(p11->C_SignInit(h, &ecdsa, priv));
		MUST(p11->C_VerifyInit(h, &ecdsa, pub));
		EXPECT(p11->C_DigestInit(h, NULL), CKR_OK);
		EXPECT(p11->C_SignInit(h, NULL, priv), CKR_OK);
		EXPECT(p11->C_VerifyInit(h, NULL, pub), CKR_OK);
		LC_OVER(p11->C_DigestFinal(h, out, &len));
		LC_OVER(p11->C_SignFinal(h, out, &len));
		LC_OVER(p11->C_VerifyFinal(h, sig, siglen));
		EXPECT(p11->C_SignInit(12345, NULL, priv), CKR_SESSION_HANDLE_INVALID);
	} else if (strcmp(name, "length-query-keeps") == 0) {
		MUST(p11->C_DigestInit(h, &sha256));
		MUST(p11->C_Digest(h, m, mlen, NULL, &len));
		len = 1;
		EXPECT(p11->C_Digest(h, m, mlen, out, &len), CKR_BUFFER_TOO_SMALL);
		len = sizeof(out);
		MUST(p11->C_Digest(h, m, mlen, out, &len));
		LC_OVER(p11->C_Digest(h, m, mlen, out, &len));
	} else if (strcmp(name, "login-so") == 0) {
		CK_SESSION_HANDLE ro = open_session(0, 0);
		EXPECT(p11->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR) "so", 2), CKR_SESSION_READ_ONLY_EXISTS);
		MUST(p11->C_CloseSession(ro));
		EXPECT(p11->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR) "so", 2), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
		MUST(p11->C_Logout(h));
		EXPECT(p11->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR) "so", 2), CKR_PIN_LOCKED);
	} else if (strcmp(name, "mechanism-flags") == 0) {
		CK_MECHANISM_INFO mi;
		MUST(p11->C_GetMechanismInfo(0, CKM_ECDSA_SHA256, &mi));
		CHECK((mi.flags & (CKF_HW | CKF_SIGN)) == (CKF_HW | CKF_SIGN), "ECDSA-SHA256 flags %lx: no CKF_HW", mi.flags);
		MUST(p11->C_GetMechanismInfo(0, CKM_SHA256, &mi));
		CHECK(mi.flags == CKF_DIGEST, "SHA256 flags %lx", mi.flags);
	} else if (strcmp(name, "pss-params") == 0) {
		CK_OBJECT_HANDLE rsa = find1(h, CKO_PRIVATE_KEY, "Key rsa2048");
		CK_RSA_PKCS_PSS_PARAMS bad_mgf = {CKM_SHA256, CKG_MGF1_SHA1, 32};
		CK_RSA_PKCS_PSS_PARAMS no_salt = {CKM_SHA256, CKG_MGF1_SHA256, 0};
		CK_RSA_PKCS_PSS_PARAMS good = {CKM_SHA256, CKG_MGF1_SHA256, 32};
		EXPECT(p11->C_SignInit(h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &bad_mgf, sizeof(bad_mgf)}, rsa),
		       CKR_MECHANISM_PARAM_INVALID);
		EXPECT(p11->C_SignInit(h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &no_salt, sizeof(no_salt)}, rsa),
		       CKR_MECHANISM_PARAM_INVALID);
		MUST(p11->C_SignInit(h, &(CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &good, sizeof(good)}, rsa));
		len = sizeof(out);
		MUST(p11->C_Sign(h, m, mlen, out, &len));
		LC_OVER(p11->C_Sign(h, m, mlen, out, &len));
	} else {
		fprintf(stderr, "unknown lifecycle case %s\n", name);
		return 2;
	}
	MUST(p11->C_Finalize(NULL));
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: %s LIB abi|fork|threads|finalize-while-signing|atexit [busy]|real|lifecycle CASE\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	load(argv[1]);
	if (strcmp(argv[2], "abi") == 0)
		rc = cmd_abi();
	else if (strcmp(argv[2], "fork") == 0)
		rc = cmd_fork();
	else if (strcmp(argv[2], "threads") == 0)
		rc = cmd_threads();
	else if (strcmp(argv[2], "finalize-while-signing") == 0)
		rc = cmd_finalize_while_signing();
	else if (strcmp(argv[2], "atexit") == 0)
		rc = cmd_atexit(argc > 3 && strcmp(argv[3], "busy") == 0);
	else if (strcmp(argv[2], "real") == 0)
		rc = cmd_real();
	else if (strcmp(argv[2], "lifecycle") == 0 && argc > 3)
		rc = cmd_lifecycle(argv[3]);
	else {
		fprintf(stderr, "unknown test %s\n", argv[2]);
		return 2;
	}
	if (atomic_load(&failures)) {
		fprintf(stderr, "%d failures\n", atomic_load(&failures));
		return 1;
	}
	return rc;
}
