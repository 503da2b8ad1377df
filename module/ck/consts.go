package ck

// Return values (CK_RV).
const (
	CKR_OK                               Error = 0x00000000
	CKR_CANCEL                           Error = 0x00000001
	CKR_HOST_MEMORY                      Error = 0x00000002
	CKR_SLOT_ID_INVALID                  Error = 0x00000003
	CKR_GENERAL_ERROR                    Error = 0x00000005
	CKR_FUNCTION_FAILED                  Error = 0x00000006
	CKR_ARGUMENTS_BAD                    Error = 0x00000007
	CKR_NO_EVENT                         Error = 0x00000008
	CKR_NEED_TO_CREATE_THREADS           Error = 0x00000009
	CKR_CANT_LOCK                        Error = 0x0000000A
	CKR_ATTRIBUTE_READ_ONLY              Error = 0x00000010
	CKR_ATTRIBUTE_SENSITIVE              Error = 0x00000011
	CKR_ATTRIBUTE_TYPE_INVALID           Error = 0x00000012
	CKR_ATTRIBUTE_VALUE_INVALID          Error = 0x00000013
	CKR_ACTION_PROHIBITED                Error = 0x0000001B
	CKR_DATA_INVALID                     Error = 0x00000020
	CKR_DATA_LEN_RANGE                   Error = 0x00000021
	CKR_DEVICE_ERROR                     Error = 0x00000030
	CKR_DEVICE_MEMORY                    Error = 0x00000031
	CKR_DEVICE_REMOVED                   Error = 0x00000032
	CKR_ENCRYPTED_DATA_INVALID           Error = 0x00000040
	CKR_ENCRYPTED_DATA_LEN_RANGE         Error = 0x00000041
	CKR_FUNCTION_CANCELED                Error = 0x00000050
	CKR_FUNCTION_NOT_PARALLEL            Error = 0x00000051
	CKR_FUNCTION_NOT_SUPPORTED           Error = 0x00000054
	CKR_KEY_HANDLE_INVALID               Error = 0x00000060
	CKR_KEY_SIZE_RANGE                   Error = 0x00000062
	CKR_KEY_TYPE_INCONSISTENT            Error = 0x00000063
	CKR_KEY_NOT_NEEDED                   Error = 0x00000064
	CKR_KEY_CHANGED                      Error = 0x00000065
	CKR_KEY_NEEDED                       Error = 0x00000066
	CKR_KEY_INDIGESTIBLE                 Error = 0x00000067
	CKR_KEY_FUNCTION_NOT_PERMITTED       Error = 0x00000068
	CKR_KEY_NOT_WRAPPABLE                Error = 0x00000069
	CKR_KEY_UNEXTRACTABLE                Error = 0x0000006A
	CKR_MECHANISM_INVALID                Error = 0x00000070
	CKR_MECHANISM_PARAM_INVALID          Error = 0x00000071
	CKR_OBJECT_HANDLE_INVALID            Error = 0x00000082
	CKR_OPERATION_ACTIVE                 Error = 0x00000090
	CKR_OPERATION_NOT_INITIALIZED        Error = 0x00000091
	CKR_PIN_INCORRECT                    Error = 0x000000A0
	CKR_PIN_INVALID                      Error = 0x000000A1
	CKR_PIN_LEN_RANGE                    Error = 0x000000A2
	CKR_PIN_EXPIRED                      Error = 0x000000A3
	CKR_PIN_LOCKED                       Error = 0x000000A4
	CKR_SESSION_CLOSED                   Error = 0x000000B0
	CKR_SESSION_COUNT                    Error = 0x000000B1
	CKR_SESSION_HANDLE_INVALID           Error = 0x000000B3
	CKR_SESSION_PARALLEL_NOT_SUPPORTED   Error = 0x000000B4
	CKR_SESSION_READ_ONLY                Error = 0x000000B5
	CKR_SESSION_EXISTS                   Error = 0x000000B6
	CKR_SESSION_READ_ONLY_EXISTS         Error = 0x000000B7
	CKR_SESSION_READ_WRITE_SO_EXISTS     Error = 0x000000B8
	CKR_SIGNATURE_INVALID                Error = 0x000000C0
	CKR_SIGNATURE_LEN_RANGE              Error = 0x000000C1
	CKR_TEMPLATE_INCOMPLETE              Error = 0x000000D0
	CKR_TEMPLATE_INCONSISTENT            Error = 0x000000D1
	CKR_TOKEN_NOT_PRESENT                Error = 0x000000E0
	CKR_TOKEN_NOT_RECOGNIZED             Error = 0x000000E1
	CKR_TOKEN_WRITE_PROTECTED            Error = 0x000000E2
	CKR_UNWRAPPING_KEY_HANDLE_INVALID    Error = 0x000000F0
	CKR_UNWRAPPING_KEY_SIZE_RANGE        Error = 0x000000F1
	CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT Error = 0x000000F2
	CKR_USER_ALREADY_LOGGED_IN           Error = 0x00000100
	CKR_USER_NOT_LOGGED_IN               Error = 0x00000101
	CKR_USER_PIN_NOT_INITIALIZED         Error = 0x00000102
	CKR_USER_TYPE_INVALID                Error = 0x00000103
	CKR_USER_ANOTHER_ALREADY_LOGGED_IN   Error = 0x00000104
	CKR_USER_TOO_MANY_TYPES              Error = 0x00000105
	CKR_WRAPPED_KEY_INVALID              Error = 0x00000110
	CKR_WRAPPED_KEY_LEN_RANGE            Error = 0x00000112
	CKR_WRAPPING_KEY_HANDLE_INVALID      Error = 0x00000113
	CKR_WRAPPING_KEY_SIZE_RANGE          Error = 0x00000114
	CKR_WRAPPING_KEY_TYPE_INCONSISTENT   Error = 0x00000115
	CKR_RANDOM_SEED_NOT_SUPPORTED        Error = 0x00000120
	CKR_RANDOM_NO_RNG                    Error = 0x00000121
	CKR_DOMAIN_PARAMS_INVALID            Error = 0x00000130
	CKR_CURVE_NOT_SUPPORTED              Error = 0x00000140
	CKR_BUFFER_TOO_SMALL                 Error = 0x00000150
	CKR_SAVED_STATE_INVALID              Error = 0x00000160
	CKR_INFORMATION_SENSITIVE            Error = 0x00000170
	CKR_STATE_UNSAVEABLE                 Error = 0x00000180
	CKR_CRYPTOKI_NOT_INITIALIZED         Error = 0x00000190
	CKR_CRYPTOKI_ALREADY_INITIALIZED     Error = 0x00000191
	CKR_MUTEX_BAD                        Error = 0x000001A0
	CKR_MUTEX_NOT_LOCKED                 Error = 0x000001A1
	CKR_NEW_PIN_MODE                     Error = 0x000001B0
	CKR_NEXT_OTP                         Error = 0x000001B1
	CKR_EXCEEDED_MAX_ITERATIONS          Error = 0x000001B5
	CKR_FIPS_SELF_TEST_FAILED            Error = 0x000001B6
	CKR_LIBRARY_LOAD_FAILED              Error = 0x000001B7
	CKR_PIN_TOO_WEAK                     Error = 0x000001B8
	CKR_PUBLIC_KEY_INVALID               Error = 0x000001B9
	CKR_FUNCTION_REJECTED                Error = 0x00000200
	CKR_TOKEN_RESOURCE_EXCEEDED          Error = 0x00000201
	CKR_OPERATION_CANCEL_FAILED          Error = 0x00000202
	CKR_VENDOR_DEFINED                   Error = 0x80000000
)

// Object classes (CK_OBJECT_CLASS).
const (
	CKO_DATA              = 0x0
	CKO_CERTIFICATE       = 0x1
	CKO_PUBLIC_KEY        = 0x2
	CKO_PRIVATE_KEY       = 0x3
	CKO_SECRET_KEY        = 0x4
	CKO_HW_FEATURE        = 0x5
	CKO_DOMAIN_PARAMETERS = 0x6
	CKO_MECHANISM         = 0x7
	CKO_OTP_KEY           = 0x8
	CKO_PROFILE           = 0x9
)

// Key types (CK_KEY_TYPE).
const (
	CKK_RSA            = 0x00
	CKK_DSA            = 0x01
	CKK_DH             = 0x02
	CKK_EC             = 0x03
	CKK_GENERIC_SECRET = 0x10
	CKK_AES            = 0x1F
	CKK_EC_EDWARDS     = 0x40
)

// Certificate types (CK_CERTIFICATE_TYPE).
const (
	CKC_X_509           = 0x0
	CKC_X_509_ATTR_CERT = 0x1
	CKC_WTLS            = 0x2
)

// Certificate categories (CK_CERTIFICATE_CATEGORY).
const (
	CK_CERTIFICATE_CATEGORY_UNSPECIFIED  = 0
	CK_CERTIFICATE_CATEGORY_TOKEN_USER   = 1
	CK_CERTIFICATE_CATEGORY_AUTHORITY    = 2
	CK_CERTIFICATE_CATEGORY_OTHER_ENTITY = 3
)

// Java MIDP security domains.
const CK_SECURITY_DOMAIN_UNSPECIFIED = 0

// Profile IDs (CK_PROFILE_ID, v3.0).
const (
	CKP_INVALID_ID                = 0
	CKP_BASELINE_PROVIDER         = 1
	CKP_EXTENDED_PROVIDER         = 2
	CKP_AUTHENTICATION_TOKEN      = 3
	CKP_PUBLIC_CERTIFICATES_TOKEN = 4
)

// CKF_ARRAY_ATTRIBUTE marks attributes whose value is an attribute array.
const CKF_ARRAY_ATTRIBUTE = 0x40000000

// Attribute types (CK_ATTRIBUTE_TYPE).
const (
	CKA_CLASS                      = 0x000
	CKA_TOKEN                      = 0x001
	CKA_PRIVATE                    = 0x002
	CKA_LABEL                      = 0x003
	CKA_UNIQUE_ID                  = 0x004
	CKA_APPLICATION                = 0x010
	CKA_VALUE                      = 0x011
	CKA_OBJECT_ID                  = 0x012
	CKA_CERTIFICATE_TYPE           = 0x080
	CKA_ISSUER                     = 0x081
	CKA_SERIAL_NUMBER              = 0x082
	CKA_AC_ISSUER                  = 0x083
	CKA_OWNER                      = 0x084
	CKA_ATTR_TYPES                 = 0x085
	CKA_TRUSTED                    = 0x086
	CKA_CERTIFICATE_CATEGORY       = 0x087
	CKA_JAVA_MIDP_SECURITY_DOMAIN  = 0x088
	CKA_URL                        = 0x089
	CKA_HASH_OF_SUBJECT_PUBLIC_KEY = 0x08A
	CKA_HASH_OF_ISSUER_PUBLIC_KEY  = 0x08B
	CKA_NAME_HASH_ALGORITHM        = 0x08C
	CKA_CHECK_VALUE                = 0x090
	CKA_KEY_TYPE                   = 0x100
	CKA_SUBJECT                    = 0x101
	CKA_ID                         = 0x102
	CKA_SENSITIVE                  = 0x103
	CKA_ENCRYPT                    = 0x104
	CKA_DECRYPT                    = 0x105
	CKA_WRAP                       = 0x106
	CKA_UNWRAP                     = 0x107
	CKA_SIGN                       = 0x108
	CKA_SIGN_RECOVER               = 0x109
	CKA_VERIFY                     = 0x10A
	CKA_VERIFY_RECOVER             = 0x10B
	CKA_DERIVE                     = 0x10C
	CKA_START_DATE                 = 0x110
	CKA_END_DATE                   = 0x111
	CKA_MODULUS                    = 0x120
	CKA_MODULUS_BITS               = 0x121
	CKA_PUBLIC_EXPONENT            = 0x122
	CKA_PRIVATE_EXPONENT           = 0x123
	CKA_PRIME_1                    = 0x124
	CKA_PRIME_2                    = 0x125
	CKA_EXPONENT_1                 = 0x126
	CKA_EXPONENT_2                 = 0x127
	CKA_COEFFICIENT                = 0x128
	CKA_PUBLIC_KEY_INFO            = 0x129
	CKA_PRIME                      = 0x130
	CKA_SUBPRIME                   = 0x131
	CKA_BASE                       = 0x132
	CKA_PRIME_BITS                 = 0x133
	CKA_SUBPRIME_BITS              = 0x134
	CKA_VALUE_BITS                 = 0x160
	CKA_VALUE_LEN                  = 0x161
	CKA_EXTRACTABLE                = 0x162
	CKA_LOCAL                      = 0x163
	CKA_NEVER_EXTRACTABLE          = 0x164
	CKA_ALWAYS_SENSITIVE           = 0x165
	CKA_KEY_GEN_MECHANISM          = 0x166
	CKA_MODIFIABLE                 = 0x170
	CKA_COPYABLE                   = 0x171
	CKA_DESTROYABLE                = 0x172
	CKA_EC_PARAMS                  = 0x180
	CKA_EC_POINT                   = 0x181
	CKA_ALWAYS_AUTHENTICATE        = 0x202
	CKA_WRAP_WITH_TRUSTED          = 0x210
	CKA_WRAP_TEMPLATE              = CKF_ARRAY_ATTRIBUTE | 0x211
	CKA_UNWRAP_TEMPLATE            = CKF_ARRAY_ATTRIBUTE | 0x212
	CKA_DERIVE_TEMPLATE            = CKF_ARRAY_ATTRIBUTE | 0x213
	CKA_HW_FEATURE_TYPE            = 0x300
	CKA_RESET_ON_INIT              = 0x301
	CKA_HAS_RESET                  = 0x302
	CKA_ALLOWED_MECHANISMS         = CKF_ARRAY_ATTRIBUTE | 0x600
	CKA_PROFILE_ID                 = 0x601
	CKA_VENDOR_DEFINED             = 0x80000000
)

// Mechanism types (CK_MECHANISM_TYPE).
const (
	CKM_RSA_PKCS_KEY_PAIR_GEN = 0x0000
	CKM_RSA_PKCS              = 0x0001
	CKM_RSA_X_509             = 0x0003
	CKM_MD5_RSA_PKCS          = 0x0005
	CKM_SHA1_RSA_PKCS         = 0x0006
	CKM_RSA_PKCS_OAEP         = 0x0009
	CKM_RSA_PKCS_PSS          = 0x000D
	CKM_SHA1_RSA_PKCS_PSS     = 0x000E
	CKM_SHA256_RSA_PKCS       = 0x0040
	CKM_SHA384_RSA_PKCS       = 0x0041
	CKM_SHA512_RSA_PKCS       = 0x0042
	CKM_SHA256_RSA_PKCS_PSS   = 0x0043
	CKM_SHA384_RSA_PKCS_PSS   = 0x0044
	CKM_SHA512_RSA_PKCS_PSS   = 0x0045
	CKM_SHA224_RSA_PKCS       = 0x0046
	CKM_SHA224_RSA_PKCS_PSS   = 0x0047
	CKM_MD5                   = 0x0210
	CKM_SHA_1                 = 0x0220
	CKM_SHA256                = 0x0250
	CKM_SHA224                = 0x0255
	CKM_SHA384                = 0x0260
	CKM_SHA512                = 0x0270
	CKM_EC_KEY_PAIR_GEN       = 0x1040
	CKM_ECDSA                 = 0x1041
	CKM_ECDSA_SHA1            = 0x1042
	CKM_ECDSA_SHA224          = 0x1043
	CKM_ECDSA_SHA256          = 0x1044
	CKM_ECDSA_SHA384          = 0x1045
	CKM_ECDSA_SHA512          = 0x1046
	CKM_VENDOR_DEFINED        = 0x80000000
)

// MGF types (CK_RSA_PKCS_MGF_TYPE).
const (
	CKG_MGF1_SHA1   = 0x1
	CKG_MGF1_SHA256 = 0x2
	CKG_MGF1_SHA384 = 0x3
	CKG_MGF1_SHA512 = 0x4
	CKG_MGF1_SHA224 = 0x5
)

// CK_C_INITIALIZE_ARGS flags.
const (
	CKF_LIBRARY_CANT_CREATE_OS_THREADS = 0x1
	CKF_OS_LOCKING_OK                  = 0x2
)

// C_WaitForSlotEvent flags.
const CKF_DONT_BLOCK = 0x1

// CK_SLOT_INFO flags.
const (
	CKF_TOKEN_PRESENT    = 0x1
	CKF_REMOVABLE_DEVICE = 0x2
	CKF_HW_SLOT          = 0x4
)

// CK_TOKEN_INFO flags.
const (
	CKF_RNG                           = 0x00000001
	CKF_WRITE_PROTECTED               = 0x00000002
	CKF_LOGIN_REQUIRED                = 0x00000004
	CKF_USER_PIN_INITIALIZED          = 0x00000008
	CKF_RESTORE_KEY_NOT_NEEDED        = 0x00000020
	CKF_CLOCK_ON_TOKEN                = 0x00000040
	CKF_PROTECTED_AUTHENTICATION_PATH = 0x00000100
	CKF_DUAL_CRYPTO_OPERATIONS        = 0x00000200
	CKF_TOKEN_INITIALIZED             = 0x00000400
	CKF_SECONDARY_AUTHENTICATION      = 0x00000800
	CKF_USER_PIN_COUNT_LOW            = 0x00010000
	CKF_USER_PIN_FINAL_TRY            = 0x00020000
	CKF_USER_PIN_LOCKED               = 0x00040000
	CKF_USER_PIN_TO_BE_CHANGED        = 0x00080000
	CKF_SO_PIN_COUNT_LOW              = 0x00100000
	CKF_SO_PIN_FINAL_TRY              = 0x00200000
	CKF_SO_PIN_LOCKED                 = 0x00400000
	CKF_SO_PIN_TO_BE_CHANGED          = 0x00800000
	CKF_ERROR_STATE                   = 0x01000000
)

// CK_SESSION_INFO flags.
const (
	CKF_RW_SESSION     = 0x2
	CKF_SERIAL_SESSION = 0x4
)

// CK_MECHANISM_INFO flags.
const (
	CKF_HW                = 0x00000001
	CKF_ENCRYPT           = 0x00000100
	CKF_DECRYPT           = 0x00000200
	CKF_DIGEST            = 0x00000400
	CKF_SIGN              = 0x00000800
	CKF_SIGN_RECOVER      = 0x00001000
	CKF_VERIFY            = 0x00002000
	CKF_VERIFY_RECOVER    = 0x00004000
	CKF_GENERATE          = 0x00008000
	CKF_GENERATE_KEY_PAIR = 0x00010000
	CKF_WRAP              = 0x00020000
	CKF_UNWRAP            = 0x00040000
	CKF_DERIVE            = 0x00080000
	CKF_EC_F_P            = 0x00100000
	CKF_EC_F_2M           = 0x00200000
	CKF_EC_ECPARAMETERS   = 0x00400000
	CKF_EC_NAMEDCURVE     = 0x00800000
	CKF_EC_UNCOMPRESS     = 0x01000000
	CKF_EC_COMPRESS       = 0x02000000
	CKF_EXTENSION         = 0x80000000
)

// User types (CK_USER_TYPE).
const (
	CKU_SO               = 0
	CKU_USER             = 1
	CKU_CONTEXT_SPECIFIC = 2
)

// Session states (CK_STATE).
const (
	CKS_RO_PUBLIC_SESSION = 0
	CKS_RO_USER_FUNCTIONS = 1
	CKS_RW_PUBLIC_SESSION = 2
	CKS_RW_USER_FUNCTIONS = 3
	CKS_RW_SO_FUNCTIONS   = 4
)
