/*
 * pkcs11.c: the C ABI of libcsctoken.so.
 *
 * Every C_* function of PKCS#11 2.40 and 3.0 is defined here. Each one
 * first checks the library state without entering Go:
 *
 *   - in a process forked from the one that loaded the library, the Go
 *     runtime is unusable (its threads were not copied), so the call is
 *     answered entirely in C by an empty module (see csct_child_*);
 *   - before C_Initialize (and after C_Finalize) the answer is
 *     CKR_CRYPTOKI_NOT_INITIALIZED, whatever the arguments;
 *
 * then checks its pointer arguments, and only then calls the Go export
 * (goXxx, exports.go) that does the work. No lock is held across a Go call
 * except csct_life, which only C_Initialize and C_Finalize take (and
 * neither waits on the network), so C_Finalize never waits for a C_Sign
 * in flight.
 */
#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h> /* before pkcs11.h, whose lower-case macros would rename its fields */
#else
#include <pthread.h>
#include <unistd.h>
#endif
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "csctoken.h"
#include "_cgo_export.h"

/* ---- platform ----------------------------------------------------------- */

#ifdef _WIN32
/* Windows has no fork: the process that loaded the DLL is the only one,
 * so csct_getpid is constant and the fork guard's child branches are dead
 * code. C_Initialize and C_Finalize serialise on a slim reader/writer lock
 * (no winpthreads dependency). */
typedef int csct_pid_t;
static inline csct_pid_t csct_getpid(void)
{
	return 1;
}
static SRWLOCK csct_life = SRWLOCK_INIT;
#define csct_life_lock() AcquireSRWLockExclusive(&csct_life)
#define csct_life_unlock() ReleaseSRWLockExclusive(&csct_life)
#else
typedef pid_t csct_pid_t;
#define csct_getpid getpid
/* Serialises C_Initialize and C_Finalize in the loading process. */
static pthread_mutex_t csct_life = PTHREAD_MUTEX_INITIALIZER;
#define csct_life_lock() pthread_mutex_lock(&csct_life)
#define csct_life_unlock() pthread_mutex_unlock(&csct_life)
#endif

/*
 * The ABI, per platform: what a host compiled against any PKCS#11 header
 * of that platform passes. On Windows CK_ULONG is 32 bits and every
 * structure is packed (1-byte alignment), so pointers can sit at odd
 * offsets; elsewhere (LP64) CK_ULONG is 64 bits and structures have their
 * natural alignment. The module reads or writes each structure below.
 */
#define CSCT_LAYOUT(type, size) _Static_assert(sizeof(type) == (size), #type " has the wrong size")
#define CSCT_AT(type, field, off) \
	_Static_assert(offsetof(type, field) == (off), #type "." #field " is at the wrong offset")
#if defined(_WIN32) && defined(_WIN64)
_Static_assert(sizeof(CK_ULONG) == 4, "CK_ULONG is 32 bits on Windows");
CSCT_LAYOUT(CK_VERSION, 2);
CSCT_LAYOUT(CK_INFO, 72);
CSCT_AT(CK_INFO, manufacturerID, 2);
CSCT_AT(CK_INFO, flags, 34);
CSCT_AT(CK_INFO, libraryDescription, 38);
CSCT_AT(CK_INFO, libraryVersion, 70);
CSCT_LAYOUT(CK_SLOT_INFO, 104);
CSCT_AT(CK_SLOT_INFO, flags, 96);
CSCT_AT(CK_SLOT_INFO, firmwareVersion, 102);
CSCT_LAYOUT(CK_TOKEN_INFO, 160);
CSCT_AT(CK_TOKEN_INFO, flags, 96);
CSCT_AT(CK_TOKEN_INFO, ulFreePrivateMemory, 136);
CSCT_AT(CK_TOKEN_INFO, hardwareVersion, 140);
CSCT_AT(CK_TOKEN_INFO, utcTime, 144);
CSCT_LAYOUT(CK_SESSION_INFO, 16);
CSCT_AT(CK_SESSION_INFO, ulDeviceError, 12);
CSCT_LAYOUT(CK_MECHANISM_INFO, 12);
CSCT_LAYOUT(CK_ATTRIBUTE, 16);
CSCT_AT(CK_ATTRIBUTE, pValue, 4);
CSCT_AT(CK_ATTRIBUTE, ulValueLen, 12);
CSCT_LAYOUT(CK_MECHANISM, 16);
CSCT_AT(CK_MECHANISM, pParameter, 4);
CSCT_AT(CK_MECHANISM, ulParameterLen, 12);
CSCT_LAYOUT(CK_RSA_PKCS_PSS_PARAMS, 12);
CSCT_LAYOUT(CK_C_INITIALIZE_ARGS, 44);
CSCT_AT(CK_C_INITIALIZE_ARGS, flags, 32);
CSCT_AT(CK_C_INITIALIZE_ARGS, pReserved, 36);
CSCT_LAYOUT(CK_INTERFACE, 20);
CSCT_AT(CK_INTERFACE, flags, 16);
CSCT_AT(CK_FUNCTION_LIST, C_Initialize, 2);
CSCT_LAYOUT(CK_FUNCTION_LIST, 2 + 68 * 8);
#elif !defined(_WIN32) && defined(__LP64__)
_Static_assert(sizeof(CK_ULONG) == 8, "CK_ULONG is 64 bits on LP64 systems");
CSCT_LAYOUT(CK_VERSION, 2);
CSCT_LAYOUT(CK_INFO, 88);
CSCT_AT(CK_INFO, manufacturerID, 2);
CSCT_AT(CK_INFO, flags, 40);
CSCT_AT(CK_INFO, libraryDescription, 48);
CSCT_AT(CK_INFO, libraryVersion, 80);
CSCT_LAYOUT(CK_SLOT_INFO, 112);
CSCT_AT(CK_SLOT_INFO, flags, 96);
CSCT_AT(CK_SLOT_INFO, firmwareVersion, 106);
CSCT_LAYOUT(CK_TOKEN_INFO, 208);
CSCT_AT(CK_TOKEN_INFO, flags, 96);
CSCT_AT(CK_TOKEN_INFO, ulFreePrivateMemory, 176);
CSCT_AT(CK_TOKEN_INFO, hardwareVersion, 184);
CSCT_AT(CK_TOKEN_INFO, utcTime, 188);
CSCT_LAYOUT(CK_SESSION_INFO, 32);
CSCT_AT(CK_SESSION_INFO, ulDeviceError, 24);
CSCT_LAYOUT(CK_MECHANISM_INFO, 24);
CSCT_LAYOUT(CK_ATTRIBUTE, 24);
CSCT_AT(CK_ATTRIBUTE, pValue, 8);
CSCT_AT(CK_ATTRIBUTE, ulValueLen, 16);
CSCT_LAYOUT(CK_MECHANISM, 24);
CSCT_AT(CK_MECHANISM, pParameter, 8);
CSCT_AT(CK_MECHANISM, ulParameterLen, 16);
CSCT_LAYOUT(CK_RSA_PKCS_PSS_PARAMS, 24);
CSCT_LAYOUT(CK_C_INITIALIZE_ARGS, 48);
CSCT_AT(CK_C_INITIALIZE_ARGS, flags, 32);
CSCT_AT(CK_C_INITIALIZE_ARGS, pReserved, 40);
CSCT_LAYOUT(CK_INTERFACE, 24);
CSCT_AT(CK_INTERFACE, flags, 16);
CSCT_AT(CK_FUNCTION_LIST, C_Initialize, 8);
CSCT_LAYOUT(CK_FUNCTION_LIST, 8 + 68 * 8);
#else
#error "csctoken: no ABI layout checks for this platform; add them above"
#endif

#define CSCT_UNUSED __attribute__((unused))

/* The 2.40 functions in CK_FUNCTION_LIST order, and the 3.0 additions in
 * CK_FUNCTION_LIST_3_0 order. */
#define CSCT_FUNCS_240(X)                                                                          \
	X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetFunctionList) X(C_GetSlotList)          \
	X(C_GetSlotInfo) X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo)             \
	X(C_InitToken) X(C_InitPIN) X(C_SetPIN) X(C_OpenSession) X(C_CloseSession)                 \
	X(C_CloseAllSessions) X(C_GetSessionInfo) X(C_GetOperationState) X(C_SetOperationState)    \
	X(C_Login) X(C_Logout) X(C_CreateObject) X(C_CopyObject) X(C_DestroyObject)                \
	X(C_GetObjectSize) X(C_GetAttributeValue) X(C_SetAttributeValue) X(C_FindObjectsInit)      \
	X(C_FindObjects) X(C_FindObjectsFinal) X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate)    \
	X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt) X(C_DecryptUpdate) X(C_DecryptFinal)       \
	X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) X(C_DigestKey) X(C_DigestFinal)              \
	X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit)                \
	X(C_SignRecover) X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal)            \
	X(C_VerifyRecoverInit) X(C_VerifyRecover) X(C_DigestEncryptUpdate)                         \
	X(C_DecryptDigestUpdate) X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate) X(C_GenerateKey)  \
	X(C_GenerateKeyPair) X(C_WrapKey) X(C_UnwrapKey) X(C_DeriveKey) X(C_SeedRandom)            \
	X(C_GenerateRandom) X(C_GetFunctionStatus) X(C_CancelFunction) X(C_WaitForSlotEvent)

#define CSCT_FUNCS_30(X)                                                                           \
	X(C_GetInterfaceList) X(C_GetInterface) X(C_LoginUser) X(C_SessionCancel)                  \
	X(C_MessageEncryptInit) X(C_EncryptMessage) X(C_EncryptMessageBegin)                       \
	X(C_EncryptMessageNext) X(C_MessageEncryptFinal) X(C_MessageDecryptInit)                   \
	X(C_DecryptMessage) X(C_DecryptMessageBegin) X(C_DecryptMessageNext)                       \
	X(C_MessageDecryptFinal) X(C_MessageSignInit) X(C_SignMessage) X(C_SignMessageBegin)       \
	X(C_SignMessageNext) X(C_MessageSignFinal) X(C_MessageVerifyInit) X(C_VerifyMessage)       \
	X(C_VerifyMessageBegin) X(C_VerifyMessageNext) X(C_MessageVerifyFinal)

/* CK_FUNCTION_LIST_3_0 must start exactly like p11-kit's CK_FUNCTION_LIST. */
#define CSCT_SAME_OFFSET(name)                                                                    \
	_Static_assert(offsetof(CK_FUNCTION_LIST_3_0, name) == offsetof(CK_FUNCTION_LIST, name), \
		       #name " is misplaced in CK_FUNCTION_LIST_3_0");
CSCT_SAME_OFFSET(version)
CSCT_FUNCS_240(CSCT_SAME_OFFSET)
_Static_assert(sizeof(CK_FUNCTION_LIST_3_0) == sizeof(CK_FUNCTION_LIST) + 24 * sizeof(CK_C_Initialize),
	       "CK_FUNCTION_LIST_3_0 must have 24 functions after the 2.40 ones");

/* ---- library state ------------------------------------------------------ */

/* The process that loaded the library, whose Go runtime serves calls. */
static csct_pid_t csct_load_pid;
/* 1 while the Go module is initialized; changed only under csct_life. */
static atomic_int csct_ready;
/* In a forked child: the pid in which the empty C-only module is
 * initialized (0: none). Comparing with getpid() also resets the state in
 * grandchildren, with or without fork handlers. */
static atomic_int csct_child_pid;
/* CK_INFO for the child module; set from Go's module identity at load
 * (csct_set_identity), with the same text as a fallback. */
static CK_INFO csct_child_info;

static void csct_pad(unsigned char *dst, size_t n, const char *s)
{
	size_t l = strlen(s);
	if (l > n)
		l = n;
	memcpy(dst, s, l);
	memset(dst + l, ' ', n - l);
}

__attribute__((constructor)) static void csct_on_load(void)
{
	csct_load_pid = csct_getpid();
	csct_child_info.cryptokiVersion.major = 2;
	csct_child_info.cryptokiVersion.minor = 40;
	csct_pad(csct_child_info.manufacturerID, sizeof(csct_child_info.manufacturerID), "csctoken");
	csct_pad(csct_child_info.libraryDescription, sizeof(csct_child_info.libraryDescription),
		 "csctoken CSC remote signing");
	csct_child_info.libraryVersion.major = 0;
	csct_child_info.libraryVersion.minor = 1;
}

/* Called from Go's package initialisation. */
void csct_set_identity(const CK_INFO *info)
{
	csct_child_info = *info;
}

/* CSCT_ENTER(child_rv) opens every function that needs an initialized
 * library: in a forked child it answers child_rv once the empty child
 * module is initialized (else CKR_CRYPTOKI_NOT_INITIALIZED); in the
 * loading process it answers CKR_CRYPTOKI_NOT_INITIALIZED until
 * C_Initialize. */
#define CSCT_ENTER(child_rv)                                                                        \
	do {                                                                                       \
		csct_pid_t me_ = csct_getpid();                                                    \
		if (me_ != csct_load_pid)                                                          \
			return atomic_load(&csct_child_pid) == me_ ? (child_rv)                    \
								   : CKR_CRYPTOKI_NOT_INITIALIZED; \
		if (!atomic_load(&csct_ready))                                                     \
			return CKR_CRYPTOKI_NOT_INITIALIZED;                                       \
	} while (0)

/* What an initialized empty child module answers. */
#define CHILD_SLOT CKR_SLOT_ID_INVALID
#define CHILD_SESSION CKR_SESSION_HANDLE_INVALID
#define CHILD_UNSUPPORTED CKR_FUNCTION_NOT_SUPPORTED

#define REQUIRE(cond)                           \
	do {                                    \
		if (!(cond))                    \
			return CKR_ARGUMENTS_BAD; \
	} while (0)
/* A (pointer, length) input: NULL only with length 0. */
#define BUF_OK(p, n) ((p) != NULL || (n) == 0)

/* ---- function lists and interfaces -------------------------------------- */

#define CSCT_INIT(name) .name = name,

static const CK_FUNCTION_LIST csct_functions = {
	.version = {2, 40},
	CSCT_FUNCS_240(CSCT_INIT)
};

static const CK_FUNCTION_LIST_3_0 csct_functions_3_0 = {
	.version = {3, 0},
	CSCT_FUNCS_240(CSCT_INIT)
	CSCT_FUNCS_30(CSCT_INIT)
};

static CK_CHAR csct_interface_name[] = "PKCS 11";

/* Default first. Not CKF_INTERFACE_FORK_SAFE: a forked child gets an empty
 * module, not a copy of the parent's sessions. */
static CK_INTERFACE csct_interfaces[] = {
	{csct_interface_name, (CK_VOID_PTR)&csct_functions_3_0, 0},
	{csct_interface_name, (CK_VOID_PTR)&csct_functions, 0},
};
#define CSCT_NUM_INTERFACES (sizeof(csct_interfaces) / sizeof(csct_interfaces[0]))

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
	REQUIRE(ppFunctionList != NULL);
	*ppFunctionList = (CK_FUNCTION_LIST_PTR)&csct_functions;
	return CKR_OK;
}

CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount)
{
	REQUIRE(pulCount != NULL);
	if (pInterfacesList == NULL) {
		*pulCount = CSCT_NUM_INTERFACES;
		return CKR_OK;
	}
	if (*pulCount < CSCT_NUM_INTERFACES) {
		*pulCount = CSCT_NUM_INTERFACES;
		return CKR_BUFFER_TOO_SMALL;
	}
	memcpy(pInterfacesList, csct_interfaces, sizeof(csct_interfaces));
	*pulCount = CSCT_NUM_INTERFACES;
	return CKR_OK;
}

CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion, CK_INTERFACE_PTR_PTR ppInterface,
		     CK_FLAGS flags)
{
	size_t i;

	REQUIRE(ppInterface != NULL);
	for (i = 0; i < CSCT_NUM_INTERFACES; i++) {
		CK_INTERFACE *in = &csct_interfaces[i];
		const CK_VERSION *v = (const CK_VERSION *)in->pFunctionList;
		if (pInterfaceName != NULL &&
		    strcmp((const char *)pInterfaceName, (const char *)in->pInterfaceName) != 0)
			continue;
		if (pVersion != NULL && (pVersion->major != v->major || pVersion->minor != v->minor))
			continue;
		if ((in->flags & flags) != flags)
			continue;
		*ppInterface = in;
		return CKR_OK;
	}
	return CKR_ARGUMENTS_BAD;
}

/* ---- general purpose ---------------------------------------------------- */

static CK_RV csct_check_init_args(int mutexes, int reserved)
{
	if (reserved || (mutexes != 0 && mutexes != 4))
		return CKR_ARGUMENTS_BAD;
	return CKR_OK;
}

CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
	CK_C_INITIALIZE_ARGS *args = pInitArgs;
	CK_FLAGS flags = 0;
	int mutexes = 0, reserved = 0;
	csct_pid_t me = csct_getpid();
	CK_RV rv;

	if (args != NULL) {
		flags = args->flags;
		mutexes = (args->CreateMutex != NULL) + (args->DestroyMutex != NULL) + (args->LockMutex != NULL) +
			  (args->UnlockMutex != NULL);
		reserved = args->pReserved != NULL;
	}
	if (me != csct_load_pid) {
		/* The empty module of a forked child: it creates no threads
		 * and uses no locks, so every legal argument is fine. */
		rv = csct_check_init_args(mutexes, reserved);
		if (rv != CKR_OK)
			return rv;
		if (atomic_load(&csct_child_pid) == me)
			return CKR_CRYPTOKI_ALREADY_INITIALIZED;
		atomic_store(&csct_child_pid, me);
		return CKR_OK;
	}
	csct_life_lock();
	rv = goInitialize(flags, mutexes, reserved);
	if (rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
		atomic_store(&csct_ready, 1);
	csct_life_unlock();
	return rv;
}

CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
	csct_pid_t me = csct_getpid();
	CK_RV rv;

	if (me != csct_load_pid) {
		if (atomic_load(&csct_child_pid) != me)
			return CKR_CRYPTOKI_NOT_INITIALIZED;
		REQUIRE(pReserved == NULL);
		atomic_store(&csct_child_pid, 0);
		return CKR_OK;
	}
	if (!atomic_load(&csct_ready))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	REQUIRE(pReserved == NULL);
	csct_life_lock();
	rv = goFinalize();
	if (rv == CKR_OK || rv == CKR_CRYPTOKI_NOT_INITIALIZED)
		atomic_store(&csct_ready, 0);
	csct_life_unlock();
	return rv;
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo)
{
	csct_pid_t me = csct_getpid();

	if (me != csct_load_pid) {
		if (atomic_load(&csct_child_pid) != me)
			return CKR_CRYPTOKI_NOT_INITIALIZED;
		REQUIRE(pInfo != NULL);
		*pInfo = csct_child_info;
		return CKR_OK;
	}
	if (!atomic_load(&csct_ready))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	REQUIRE(pInfo != NULL);
	return goGetInfo(pInfo);
}

/* ---- slots and tokens --------------------------------------------------- */

CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
	csct_pid_t me = csct_getpid();

	if (me != csct_load_pid) {
		if (atomic_load(&csct_child_pid) != me)
			return CKR_CRYPTOKI_NOT_INITIALIZED;
		REQUIRE(pulCount != NULL);
		*pulCount = 0;
		return CKR_OK;
	}
	if (!atomic_load(&csct_ready))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	REQUIRE(pulCount != NULL);
	return goGetSlotList(tokenPresent, pSlotList, pulCount);
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	CSCT_ENTER(CHILD_SLOT);
	REQUIRE(pInfo != NULL);
	return goGetSlotInfo(slotID, pInfo);
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	CSCT_ENTER(CHILD_SLOT);
	REQUIRE(pInfo != NULL);
	return goGetTokenInfo(slotID, pInfo);
}

CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
	csct_pid_t me = csct_getpid();

	if (me != csct_load_pid) {
		if (atomic_load(&csct_child_pid) != me)
			return CKR_CRYPTOKI_NOT_INITIALIZED;
		REQUIRE(pSlot != NULL && pReserved == NULL);
		return (flags & CKF_DONT_BLOCK) ? CKR_NO_EVENT : CKR_FUNCTION_NOT_SUPPORTED;
	}
	if (!atomic_load(&csct_ready))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	REQUIRE(pSlot != NULL && pReserved == NULL);
	return goWaitForSlotEvent(flags, pSlot);
}

CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount)
{
	CSCT_ENTER(CHILD_SLOT);
	REQUIRE(pulCount != NULL);
	return goGetMechanismList(slotID, pMechanismList, pulCount);
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo)
{
	CSCT_ENTER(CHILD_SLOT);
	REQUIRE(pInfo != NULL);
	return goGetMechanismInfo(slotID, type, pInfo);
}

CK_RV C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel)
{
	CSCT_ENTER(CHILD_SLOT);
	REQUIRE(BUF_OK(pPin, ulPinLen) && pLabel != NULL);
	return goInitToken(slotID, pPin, ulPinLen, pLabel);
}

CK_RV C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(pPin, ulPinLen));
	return goInitPIN(hSession, pPin, ulPinLen);
}

CK_RV C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin,
	       CK_ULONG ulNewLen)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(pOldPin, ulOldLen) && BUF_OK(pNewPin, ulNewLen));
	return goSetPIN(hSession, pOldPin, ulOldLen, pNewPin, ulNewLen);
}

/* ---- sessions ----------------------------------------------------------- */

CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication CSCT_UNUSED,
		    CK_NOTIFY Notify CSCT_UNUSED, CK_SESSION_HANDLE_PTR phSession)
{
	/* Notification callbacks are never called (nothing surrenders). */
	CSCT_ENTER(CHILD_SLOT);
	REQUIRE(phSession != NULL);
	return goOpenSession(slotID, flags, phSession);
}

CK_RV C_CloseSession(CK_SESSION_HANDLE hSession)
{
	CSCT_ENTER(CHILD_SESSION);
	return goCloseSession(hSession);
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slotID)
{
	CSCT_ENTER(CHILD_SLOT);
	return goCloseAllSessions(slotID);
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(pInfo != NULL);
	return goGetSessionInfo(hSession, pInfo);
}

CK_RV C_GetOperationState(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pOperationState CSCT_UNUSED,
			  CK_ULONG_PTR pulOperationStateLen CSCT_UNUSED)
{
	CSCT_ENTER(CHILD_UNSUPPORTED);
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV C_SetOperationState(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pOperationState CSCT_UNUSED,
			  CK_ULONG ulOperationStateLen CSCT_UNUSED, CK_OBJECT_HANDLE hEncryptionKey CSCT_UNUSED,
			  CK_OBJECT_HANDLE hAuthenticationKey CSCT_UNUSED)
{
	CSCT_ENTER(CHILD_UNSUPPORTED);
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(pPin, ulPinLen));
	return goLogin(hSession, userType, pPin, ulPinLen);
}

/* The token has no user names: C_LoginUser is C_Login, the name ignored. */
CK_RV C_LoginUser(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
		  CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(pPin, ulPinLen) && BUF_OK(pUsername, ulUsernameLen));
	return goLogin(hSession, userType, pPin, ulPinLen);
}

CK_RV C_Logout(CK_SESSION_HANDLE hSession)
{
	CSCT_ENTER(CHILD_SESSION);
	return goLogout(hSession);
}

/* Ends the session's active operations named in flags; a signature waiting
 * on the service returns CKR_FUNCTION_CANCELED in its own thread. */
CK_RV C_SessionCancel(CK_SESSION_HANDLE hSession, CK_FLAGS flags)
{
	CSCT_ENTER(CHILD_SESSION);
	return goSessionCancel(hSession, flags);
}

/* ---- objects ------------------------------------------------------------ */

/* A template: NULL only when empty. Entries are checked in Go. */
#define TEMPLATE_OK(p, n) BUF_OK(p, n)

CK_RV C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
		     CK_OBJECT_HANDLE_PTR phObject)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(TEMPLATE_OK(pTemplate, ulCount) && phObject != NULL);
	return goCreateObject(hSession, pTemplate, ulCount, phObject);
}

CK_RV C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
		   CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(TEMPLATE_OK(pTemplate, ulCount) && phNewObject != NULL);
	return goCopyObject(hSession, hObject, pTemplate, ulCount, phNewObject);
}

CK_RV C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
	CSCT_ENTER(CHILD_SESSION);
	return goDestroyObject(hSession, hObject);
}

CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(pulSize != NULL);
	return goGetObjectSize(hSession, hObject, pulSize);
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
			  CK_ULONG ulCount)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(TEMPLATE_OK(pTemplate, ulCount));
	return goGetAttributeValue(hSession, hObject, pTemplate, ulCount);
}

CK_RV C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
			  CK_ULONG ulCount)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(TEMPLATE_OK(pTemplate, ulCount));
	return goSetAttributeValue(hSession, hObject, pTemplate, ulCount);
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(TEMPLATE_OK(pTemplate, ulCount));
	return goFindObjectsInit(hSession, pTemplate, ulCount);
}

CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,
		    CK_ULONG_PTR pulObjectCount)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(phObject, ulMaxObjectCount) && pulObjectCount != NULL);
	return goFindObjects(hSession, phObject, ulMaxObjectCount, pulObjectCount);
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
	CSCT_ENTER(CHILD_SESSION);
	return goFindObjectsFinal(hSession);
}

/* ---- encryption and decryption: not offered ----------------------------- */

#define CSCT_UNSUPPORTED_BODY                      \
	{                                          \
		CSCT_ENTER(CHILD_UNSUPPORTED);     \
		return CKR_FUNCTION_NOT_SUPPORTED; \
	}

CK_RV C_EncryptInit(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_MECHANISM_PTR pMechanism CSCT_UNUSED,
		    CK_OBJECT_HANDLE hKey CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_Encrypt(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pData CSCT_UNUSED,
		CK_ULONG ulDataLen CSCT_UNUSED, CK_BYTE_PTR pEncryptedData CSCT_UNUSED,
		CK_ULONG_PTR pulEncryptedDataLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_EncryptUpdate(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pPart CSCT_UNUSED,
		      CK_ULONG ulPartLen CSCT_UNUSED, CK_BYTE_PTR pEncryptedPart CSCT_UNUSED,
		      CK_ULONG_PTR pulEncryptedPartLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_EncryptFinal(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pLastEncryptedPart CSCT_UNUSED,
		     CK_ULONG_PTR pulLastEncryptedPartLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_DecryptInit(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_MECHANISM_PTR pMechanism CSCT_UNUSED,
		    CK_OBJECT_HANDLE hKey CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_Decrypt(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pEncryptedData CSCT_UNUSED,
		CK_ULONG ulEncryptedDataLen CSCT_UNUSED, CK_BYTE_PTR pData CSCT_UNUSED,
		CK_ULONG_PTR pulDataLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_DecryptUpdate(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pEncryptedPart CSCT_UNUSED,
		      CK_ULONG ulEncryptedPartLen CSCT_UNUSED, CK_BYTE_PTR pPart CSCT_UNUSED,
		      CK_ULONG_PTR pulPartLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_DecryptFinal(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pLastPart CSCT_UNUSED,
		     CK_ULONG_PTR pulLastPartLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

/* ---- digests (local) ---------------------------------------------------- */

CK_RV C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism)
{
	CSCT_ENTER(CHILD_SESSION);
	/* NULL ends the active digest (PKCS#11 3.0): Go's business. */
	REQUIRE(pMechanism == NULL || BUF_OK(pMechanism->pParameter, pMechanism->ulParameterLen));
	return goDigestInit(hSession, pMechanism);
}

CK_RV C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest,
	       CK_ULONG_PTR pulDigestLen)
{
	CSCT_ENTER(CHILD_SESSION);
	/* Bad arguments end the digest too (PKCS#11 §5.2): checked in Go. */
	return goDigest(hSession, pData, ulDataLen, pDigest, pulDigestLen);
}

CK_RV C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(pPart, ulPartLen));
	return goDigestUpdate(hSession, pPart, ulPartLen);
}

CK_RV C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey)
{
	CSCT_ENTER(CHILD_SESSION);
	return goDigestKey(hSession, hKey);
}

CK_RV C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen)
{
	CSCT_ENTER(CHILD_SESSION);
	return goDigestFinal(hSession, pDigest, pulDigestLen);
}

/* ---- signatures (remote) and verification (local) ----------------------- */

CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(pMechanism == NULL || BUF_OK(pMechanism->pParameter, pMechanism->ulParameterLen));
	return goSignInit(hSession, pMechanism, hKey);
}

CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
	     CK_ULONG_PTR pulSignatureLen)
{
	CSCT_ENTER(CHILD_SESSION);
	/* Bad arguments end the signature too (PKCS#11 §5.2): checked in Go. */
	return goSign(hSession, pData, ulDataLen, pSignature, pulSignatureLen);
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(pPart, ulPartLen));
	return goSignUpdate(hSession, pPart, ulPartLen);
}

CK_RV C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	CSCT_ENTER(CHILD_SESSION);
	return goSignFinal(hSession, pSignature, pulSignatureLen);
}

CK_RV C_SignRecoverInit(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_MECHANISM_PTR pMechanism CSCT_UNUSED,
			CK_OBJECT_HANDLE hKey CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_SignRecover(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pData CSCT_UNUSED,
		    CK_ULONG ulDataLen CSCT_UNUSED, CK_BYTE_PTR pSignature CSCT_UNUSED,
		    CK_ULONG_PTR pulSignatureLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(pMechanism == NULL || BUF_OK(pMechanism->pParameter, pMechanism->ulParameterLen));
	return goVerifyInit(hSession, pMechanism, hKey);
}

CK_RV C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
	       CK_ULONG ulSignatureLen)
{
	CSCT_ENTER(CHILD_SESSION);
	/* Bad arguments end the verification too (PKCS#11 §5.2): checked in Go. */
	return goVerify(hSession, pData, ulDataLen, pSignature, ulSignatureLen);
}

CK_RV C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(pPart, ulPartLen));
	return goVerifyUpdate(hSession, pPart, ulPartLen);
}

CK_RV C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
	CSCT_ENTER(CHILD_SESSION);
	return goVerifyFinal(hSession, pSignature, ulSignatureLen);
}

CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_MECHANISM_PTR pMechanism CSCT_UNUSED,
			  CK_OBJECT_HANDLE hKey CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_VerifyRecover(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pSignature CSCT_UNUSED,
		      CK_ULONG ulSignatureLen CSCT_UNUSED, CK_BYTE_PTR pData CSCT_UNUSED,
		      CK_ULONG_PTR pulDataLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

/* ---- dual-function operations: not offered ------------------------------ */

CK_RV C_DigestEncryptUpdate(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pPart CSCT_UNUSED,
			    CK_ULONG ulPartLen CSCT_UNUSED, CK_BYTE_PTR pEncryptedPart CSCT_UNUSED,
			    CK_ULONG_PTR pulEncryptedPartLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_DecryptDigestUpdate(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pEncryptedPart CSCT_UNUSED,
			    CK_ULONG ulEncryptedPartLen CSCT_UNUSED, CK_BYTE_PTR pPart CSCT_UNUSED,
			    CK_ULONG_PTR pulPartLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_SignEncryptUpdate(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pPart CSCT_UNUSED,
			  CK_ULONG ulPartLen CSCT_UNUSED, CK_BYTE_PTR pEncryptedPart CSCT_UNUSED,
			  CK_ULONG_PTR pulEncryptedPartLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_DecryptVerifyUpdate(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_BYTE_PTR pEncryptedPart CSCT_UNUSED,
			    CK_ULONG ulEncryptedPartLen CSCT_UNUSED, CK_BYTE_PTR pPart CSCT_UNUSED,
			    CK_ULONG_PTR pulPartLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

/* ---- key management: the token is write-protected ----------------------- */

CK_RV C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate,
		    CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(pMechanism != NULL && TEMPLATE_OK(pTemplate, ulCount) && phKey != NULL);
	return goGenerateKey(hSession, pTemplate, ulCount, NULL, 0, phKey);
}

CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
			CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
			CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(pMechanism != NULL && TEMPLATE_OK(pPublicKeyTemplate, ulPublicKeyAttributeCount) &&
		TEMPLATE_OK(pPrivateKeyTemplate, ulPrivateKeyAttributeCount) && phPublicKey != NULL &&
		phPrivateKey != NULL);
	return goGenerateKey(hSession, pPublicKeyTemplate, ulPublicKeyAttributeCount, pPrivateKeyTemplate,
			     ulPrivateKeyAttributeCount, NULL);
}

CK_RV C_WrapKey(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_MECHANISM_PTR pMechanism CSCT_UNUSED,
		CK_OBJECT_HANDLE hWrappingKey CSCT_UNUSED, CK_OBJECT_HANDLE hKey CSCT_UNUSED,
		CK_BYTE_PTR pWrappedKey CSCT_UNUSED, CK_ULONG_PTR pulWrappedKeyLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		  CK_OBJECT_HANDLE hUnwrappingKey CSCT_UNUSED, CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen,
		  CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(pMechanism != NULL && BUF_OK(pWrappedKey, ulWrappedKeyLen) &&
		TEMPLATE_OK(pTemplate, ulAttributeCount) && phKey != NULL);
	return goGenerateKey(hSession, pTemplate, ulAttributeCount, NULL, 0, NULL);
}

CK_RV C_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey CSCT_UNUSED,
		  CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(pMechanism != NULL && TEMPLATE_OK(pTemplate, ulAttributeCount) && phKey != NULL);
	return goGenerateKey(hSession, pTemplate, ulAttributeCount, NULL, 0, NULL);
}

/* ---- random numbers and legacy functions -------------------------------- */

CK_RV C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(pSeed, ulSeedLen));
	return goSeedRandom(hSession, pSeed, ulSeedLen);
}

CK_RV C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData, CK_ULONG ulRandomLen)
{
	CSCT_ENTER(CHILD_SESSION);
	REQUIRE(BUF_OK(pRandomData, ulRandomLen));
	return goGenerateRandom(hSession, pRandomData, ulRandomLen);
}

CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE hSession)
{
	CSCT_ENTER(CHILD_SESSION);
	return goGetFunctionStatus(hSession);
}

CK_RV C_CancelFunction(CK_SESSION_HANDLE hSession)
{
	CSCT_ENTER(CHILD_SESSION);
	return goCancelFunction(hSession);
}

/* ---- PKCS#11 3.0 message-based functions: not offered ------------------- */

CK_RV C_MessageEncryptInit(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_MECHANISM_PTR pMechanism CSCT_UNUSED,
			   CK_OBJECT_HANDLE hKey CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_EncryptMessage(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
		       CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pAssociatedData CSCT_UNUSED,
		       CK_ULONG ulAssociatedDataLen CSCT_UNUSED, CK_BYTE_PTR pPlaintext CSCT_UNUSED,
		       CK_ULONG ulPlaintextLen CSCT_UNUSED, CK_BYTE_PTR pCiphertext CSCT_UNUSED,
		       CK_ULONG_PTR pulCiphertextLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_EncryptMessageBegin(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
			    CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pAssociatedData CSCT_UNUSED,
			    CK_ULONG ulAssociatedDataLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_EncryptMessageNext(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
			   CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pPlaintextPart CSCT_UNUSED,
			   CK_ULONG ulPlaintextPartLen CSCT_UNUSED, CK_BYTE_PTR pCiphertextPart CSCT_UNUSED,
			   CK_ULONG_PTR pulCiphertextPartLen CSCT_UNUSED,
			   CK_FLAGS flags CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_MessageEncryptFinal(CK_SESSION_HANDLE hSession CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_MessageDecryptInit(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_MECHANISM_PTR pMechanism CSCT_UNUSED,
			   CK_OBJECT_HANDLE hKey CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_DecryptMessage(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
		       CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pAssociatedData CSCT_UNUSED,
		       CK_ULONG ulAssociatedDataLen CSCT_UNUSED, CK_BYTE_PTR pCiphertext CSCT_UNUSED,
		       CK_ULONG ulCiphertextLen CSCT_UNUSED, CK_BYTE_PTR pPlaintext CSCT_UNUSED,
		       CK_ULONG_PTR pulPlaintextLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_DecryptMessageBegin(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
			    CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pAssociatedData CSCT_UNUSED,
			    CK_ULONG ulAssociatedDataLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_DecryptMessageNext(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
			   CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pCiphertextPart CSCT_UNUSED,
			   CK_ULONG ulCiphertextPartLen CSCT_UNUSED, CK_BYTE_PTR pPlaintextPart CSCT_UNUSED,
			   CK_ULONG_PTR pulPlaintextPartLen CSCT_UNUSED,
			   CK_FLAGS flags CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_MessageDecryptFinal(CK_SESSION_HANDLE hSession CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_MessageSignInit(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_MECHANISM_PTR pMechanism CSCT_UNUSED,
			CK_OBJECT_HANDLE hKey CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_SignMessage(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
		    CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pData CSCT_UNUSED,
		    CK_ULONG ulDataLen CSCT_UNUSED, CK_BYTE_PTR pSignature CSCT_UNUSED,
		    CK_ULONG_PTR pulSignatureLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_SignMessageBegin(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
			 CK_ULONG ulParameterLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_SignMessageNext(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
			CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pData CSCT_UNUSED,
			CK_ULONG ulDataLen CSCT_UNUSED, CK_BYTE_PTR pSignature CSCT_UNUSED,
			CK_ULONG_PTR pulSignatureLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_MessageSignFinal(CK_SESSION_HANDLE hSession CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_MessageVerifyInit(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_MECHANISM_PTR pMechanism CSCT_UNUSED,
			  CK_OBJECT_HANDLE hKey CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_VerifyMessage(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
		      CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pData CSCT_UNUSED,
		      CK_ULONG ulDataLen CSCT_UNUSED, CK_BYTE_PTR pSignature CSCT_UNUSED,
		      CK_ULONG ulSignatureLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_VerifyMessageBegin(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
			   CK_ULONG ulParameterLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_VerifyMessageNext(CK_SESSION_HANDLE hSession CSCT_UNUSED, CK_VOID_PTR pParameter CSCT_UNUSED,
			  CK_ULONG ulParameterLen CSCT_UNUSED, CK_BYTE_PTR pData CSCT_UNUSED,
			  CK_ULONG ulDataLen CSCT_UNUSED, CK_BYTE_PTR pSignature CSCT_UNUSED,
			  CK_ULONG ulSignatureLen CSCT_UNUSED) CSCT_UNSUPPORTED_BODY

CK_RV C_MessageVerifyFinal(CK_SESSION_HANDLE hSession CSCT_UNUSED) CSCT_UNSUPPORTED_BODY
