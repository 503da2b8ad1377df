/*
 * csctoken.h: declarations shared by the C half of libcsctoken.so
 * (pkcs11.c) and the cgo preamble of the Go half (exports.go).
 *
 * The PKCS#11 types come from p11-kit's permissively licensed pkcs11.h
 * (Debian libp11-kit-dev; `pkg-config --cflags p11-kit-1`). p11-kit
 * before 0.25 describes PKCS#11 2.40 only, so when the header lacks the
 * 3.0 interface types they are declared below, written from the PKCS#11
 * 3.0 specification. Their 2.40 prefix is checked against p11-kit's
 * CK_FUNCTION_LIST at compile time in pkcs11.c.
 */
#ifndef CSCTOKEN_H
#define CSCTOKEN_H 1

#ifdef _WIN32
/* Windows: the header then declares every C_* function
 * __declspec(dllexport), so that the DLL exports them (and, as nothing
 * else is marked, nothing else; see exports.go). Its structures are
 * packed (#pragma pack(1)) and CK_ULONG is 32 bits: the Windows PKCS#11
 * ABI. pkcs11.c asserts the layouts for each platform. */
#define CRYPTOKI_EXPORTS 1
#endif

#include <p11-kit/pkcs11.h>

#ifndef CKF_INTERFACE_FORK_SAFE /* the header has no PKCS#11 3.0 */
#define CSCT_OWN_V3_TYPES 1

#ifdef _WIN32
#pragma pack(push, cryptoki, 1) /* as p11-kit's header does for its own */
#endif

#define CKF_INTERFACE_FORK_SAFE 0x00000001UL
#define CKF_END_OF_MESSAGE 0x00000001UL

typedef struct CK_INTERFACE {
	CK_CHAR *pInterfaceName;
	CK_VOID_PTR pFunctionList;
	CK_FLAGS flags;
} CK_INTERFACE;
typedef CK_INTERFACE *CK_INTERFACE_PTR;
typedef CK_INTERFACE_PTR *CK_INTERFACE_PTR_PTR;

/* The PKCS#11 3.0 functions, declared the way p11-kit declares the 2.40
 * ones: a prototype and a CK_<name> pointer type for each. */
#define CSCT_DECLARE_V3(name, args) \
	typedef CK_RV (*CK_##name) args; \
	CK_RV CK_SPEC name args

CSCT_DECLARE_V3(C_GetInterfaceList, (CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount));
CSCT_DECLARE_V3(C_GetInterface, (CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
				 CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags));
CSCT_DECLARE_V3(C_LoginUser, (CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
			      CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen));
CSCT_DECLARE_V3(C_SessionCancel, (CK_SESSION_HANDLE hSession, CK_FLAGS flags));
CSCT_DECLARE_V3(C_MessageEncryptInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
				       CK_OBJECT_HANDLE hKey));
CSCT_DECLARE_V3(C_EncryptMessage, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
				   CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext,
				   CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext, CK_ULONG_PTR pulCiphertextLen));
CSCT_DECLARE_V3(C_EncryptMessageBegin, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
					CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
					CK_ULONG ulAssociatedDataLen));
CSCT_DECLARE_V3(C_EncryptMessageNext, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
				       CK_ULONG ulParameterLen, CK_BYTE_PTR pPlaintextPart,
				       CK_ULONG ulPlaintextPartLen, CK_BYTE_PTR pCiphertextPart,
				       CK_ULONG_PTR pulCiphertextPartLen, CK_FLAGS flags));
CSCT_DECLARE_V3(C_MessageEncryptFinal, (CK_SESSION_HANDLE hSession));
CSCT_DECLARE_V3(C_MessageDecryptInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
				       CK_OBJECT_HANDLE hKey));
CSCT_DECLARE_V3(C_DecryptMessage, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
				   CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pCiphertext,
				   CK_ULONG ulCiphertextLen, CK_BYTE_PTR pPlaintext, CK_ULONG_PTR pulPlaintextLen));
CSCT_DECLARE_V3(C_DecryptMessageBegin, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
					CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
					CK_ULONG ulAssociatedDataLen));
CSCT_DECLARE_V3(C_DecryptMessageNext, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
				       CK_ULONG ulParameterLen, CK_BYTE_PTR pCiphertextPart,
				       CK_ULONG ulCiphertextPartLen, CK_BYTE_PTR pPlaintextPart,
				       CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags));
CSCT_DECLARE_V3(C_MessageDecryptFinal, (CK_SESSION_HANDLE hSession));
CSCT_DECLARE_V3(C_MessageSignInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
				    CK_OBJECT_HANDLE hKey));
CSCT_DECLARE_V3(C_SignMessage, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
				CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
				CK_ULONG_PTR pulSignatureLen));
CSCT_DECLARE_V3(C_SignMessageBegin, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
				     CK_ULONG ulParameterLen));
CSCT_DECLARE_V3(C_SignMessageNext, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
				    CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
				    CK_ULONG_PTR pulSignatureLen));
CSCT_DECLARE_V3(C_MessageSignFinal, (CK_SESSION_HANDLE hSession));
CSCT_DECLARE_V3(C_MessageVerifyInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
				      CK_OBJECT_HANDLE hKey));
CSCT_DECLARE_V3(C_VerifyMessage, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
				  CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
				  CK_ULONG ulSignatureLen));
CSCT_DECLARE_V3(C_VerifyMessageBegin, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
				       CK_ULONG ulParameterLen));
CSCT_DECLARE_V3(C_VerifyMessageNext, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
				      CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
				      CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen));
CSCT_DECLARE_V3(C_MessageVerifyFinal, (CK_SESSION_HANDLE hSession));

/* CK_FUNCTION_LIST_3_0: the 2.40 list followed by the 3.0 functions. */
typedef struct CK_FUNCTION_LIST_3_0 {
	CK_VERSION version;
	CK_C_Initialize C_Initialize;
	CK_C_Finalize C_Finalize;
	CK_C_GetInfo C_GetInfo;
	CK_C_GetFunctionList C_GetFunctionList;
	CK_C_GetSlotList C_GetSlotList;
	CK_C_GetSlotInfo C_GetSlotInfo;
	CK_C_GetTokenInfo C_GetTokenInfo;
	CK_C_GetMechanismList C_GetMechanismList;
	CK_C_GetMechanismInfo C_GetMechanismInfo;
	CK_C_InitToken C_InitToken;
	CK_C_InitPIN C_InitPIN;
	CK_C_SetPIN C_SetPIN;
	CK_C_OpenSession C_OpenSession;
	CK_C_CloseSession C_CloseSession;
	CK_C_CloseAllSessions C_CloseAllSessions;
	CK_C_GetSessionInfo C_GetSessionInfo;
	CK_C_GetOperationState C_GetOperationState;
	CK_C_SetOperationState C_SetOperationState;
	CK_C_Login C_Login;
	CK_C_Logout C_Logout;
	CK_C_CreateObject C_CreateObject;
	CK_C_CopyObject C_CopyObject;
	CK_C_DestroyObject C_DestroyObject;
	CK_C_GetObjectSize C_GetObjectSize;
	CK_C_GetAttributeValue C_GetAttributeValue;
	CK_C_SetAttributeValue C_SetAttributeValue;
	CK_C_FindObjectsInit C_FindObjectsInit;
	CK_C_FindObjects C_FindObjects;
	CK_C_FindObjectsFinal C_FindObjectsFinal;
	CK_C_EncryptInit C_EncryptInit;
	CK_C_Encrypt C_Encrypt;
	CK_C_EncryptUpdate C_EncryptUpdate;
	CK_C_EncryptFinal C_EncryptFinal;
	CK_C_DecryptInit C_DecryptInit;
	CK_C_Decrypt C_Decrypt;
	CK_C_DecryptUpdate C_DecryptUpdate;
	CK_C_DecryptFinal C_DecryptFinal;
	CK_C_DigestInit C_DigestInit;
	CK_C_Digest C_Digest;
	CK_C_DigestUpdate C_DigestUpdate;
	CK_C_DigestKey C_DigestKey;
	CK_C_DigestFinal C_DigestFinal;
	CK_C_SignInit C_SignInit;
	CK_C_Sign C_Sign;
	CK_C_SignUpdate C_SignUpdate;
	CK_C_SignFinal C_SignFinal;
	CK_C_SignRecoverInit C_SignRecoverInit;
	CK_C_SignRecover C_SignRecover;
	CK_C_VerifyInit C_VerifyInit;
	CK_C_Verify C_Verify;
	CK_C_VerifyUpdate C_VerifyUpdate;
	CK_C_VerifyFinal C_VerifyFinal;
	CK_C_VerifyRecoverInit C_VerifyRecoverInit;
	CK_C_VerifyRecover C_VerifyRecover;
	CK_C_DigestEncryptUpdate C_DigestEncryptUpdate;
	CK_C_DecryptDigestUpdate C_DecryptDigestUpdate;
	CK_C_SignEncryptUpdate C_SignEncryptUpdate;
	CK_C_DecryptVerifyUpdate C_DecryptVerifyUpdate;
	CK_C_GenerateKey C_GenerateKey;
	CK_C_GenerateKeyPair C_GenerateKeyPair;
	CK_C_WrapKey C_WrapKey;
	CK_C_UnwrapKey C_UnwrapKey;
	CK_C_DeriveKey C_DeriveKey;
	CK_C_SeedRandom C_SeedRandom;
	CK_C_GenerateRandom C_GenerateRandom;
	CK_C_GetFunctionStatus C_GetFunctionStatus;
	CK_C_CancelFunction C_CancelFunction;
	CK_C_WaitForSlotEvent C_WaitForSlotEvent;
	/* PKCS#11 3.0 */
	CK_C_GetInterfaceList C_GetInterfaceList;
	CK_C_GetInterface C_GetInterface;
	CK_C_LoginUser C_LoginUser;
	CK_C_SessionCancel C_SessionCancel;
	CK_C_MessageEncryptInit C_MessageEncryptInit;
	CK_C_EncryptMessage C_EncryptMessage;
	CK_C_EncryptMessageBegin C_EncryptMessageBegin;
	CK_C_EncryptMessageNext C_EncryptMessageNext;
	CK_C_MessageEncryptFinal C_MessageEncryptFinal;
	CK_C_MessageDecryptInit C_MessageDecryptInit;
	CK_C_DecryptMessage C_DecryptMessage;
	CK_C_DecryptMessageBegin C_DecryptMessageBegin;
	CK_C_DecryptMessageNext C_DecryptMessageNext;
	CK_C_MessageDecryptFinal C_MessageDecryptFinal;
	CK_C_MessageSignInit C_MessageSignInit;
	CK_C_SignMessage C_SignMessage;
	CK_C_SignMessageBegin C_SignMessageBegin;
	CK_C_SignMessageNext C_SignMessageNext;
	CK_C_MessageSignFinal C_MessageSignFinal;
	CK_C_MessageVerifyInit C_MessageVerifyInit;
	CK_C_VerifyMessage C_VerifyMessage;
	CK_C_VerifyMessageBegin C_VerifyMessageBegin;
	CK_C_VerifyMessageNext C_VerifyMessageNext;
	CK_C_MessageVerifyFinal C_MessageVerifyFinal;
} CK_FUNCTION_LIST_3_0;
typedef CK_FUNCTION_LIST_3_0 *CK_FUNCTION_LIST_3_0_PTR;

#ifdef _WIN32
#pragma pack(pop, cryptoki)
#endif

#endif /* CKF_INTERFACE_FORK_SAFE */

/*
 * Accessors for the Go half. On Windows the structures are packed, so some
 * fields are unaligned (CK_ATTRIBUTE.pValue and CK_MECHANISM.pParameter at
 * offset 4, CK_INFO.flags at 34), and cgo cannot address them from Go. Go
 * reads and writes them only through these functions, identical on every
 * platform; csct_attr and csct_mech are ordinary (unpacked) structures.
 * (Their field names avoid the lower-case aliases p11-kit's header
 * defines as macros, such as value and parameter.)
 */
struct csct_attr {
	CK_ATTRIBUTE_TYPE type;
	void *ptr;
	CK_ULONG length;
};

/* csct_attr_at returns entry i of a template. */
static inline struct csct_attr csct_attr_at(const CK_ATTRIBUTE *t, CK_ULONG i)
{
	struct csct_attr a = {t[i].type, t[i].pValue, t[i].ulValueLen};
	return a;
}

/* csct_attr_set_len stores the length answered for entry i. */
static inline void csct_attr_set_len(CK_ATTRIBUTE *t, CK_ULONG i, CK_ULONG len)
{
	t[i].ulValueLen = len;
}

struct csct_mech {
	CK_MECHANISM_TYPE type;
	void *ptr;
	CK_ULONG length;
};

static inline struct csct_mech csct_mech_of(const CK_MECHANISM *m)
{
	struct csct_mech r = {m->mechanism, m->pParameter, m->ulParameterLen};
	return r;
}

static inline void csct_info_set_flags(CK_INFO *info, CK_FLAGS flags)
{
	info->flags = flags;
}

#endif /* CSCTOKEN_H */
