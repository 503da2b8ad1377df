/*
 * session.c: one long PKCS#11 session on libcsctoken.so, driven line by
 * line from stdin so that a Go test can change the world (stop the RSSP,
 * restart it) between two calls of the same session. No Go program ever
 * loads the library; this C host does.
 *
 *   session LIB
 *
 * Commands, one per line; every command answers exactly one line on
 * stdout, starting with the CK_RV name of its last call:
 *
 *   init                     C_Initialize (CKF_OS_LOCKING_OK)
 *   slots                    C_GetSlotList          -> RV count
 *   open SLOT                C_OpenSession (RW)     -> RV
 *   login PIN                C_Login(CKU_USER)      -> RV
 *   logout                   C_Logout               -> RV
 *   flags                    C_GetTokenInfo         -> RV 0xFLAGS
 *   cert LABEL...            the certificate labelled LABEL -> RV hex-DER
 *   sign MECH HEX LABEL...   C_SignInit + C_Sign with the private key
 *                            labelled LABEL on the input HEX
 *                                                   -> RV [hex-signature]
 *   finalize                 C_Finalize             -> RV
 *   sign-finalize MS MECH HEX LABEL...
 *                            C_SignInit, then C_Sign on a second thread
 *                            and, MS milliseconds later, C_Finalize on
 *                            this one -> RV-of-finalize RV-of-sign
 *                            milliseconds-finalize-took
 *   sign-start MECH HEX LABEL...
 *                            C_SignInit, then C_Sign on a second thread
 *                            (one at a time)    -> RV-of-C_SignInit
 *   cancel                   C_SessionCancel(CKF_SIGN) -> RV milliseconds
 *   close                    C_CloseSession         -> RV milliseconds
 *   sign-wait                waits for sign-start's C_Sign -> RV
 *                            milliseconds [hex-signature]: the time from
 *                            the start of the last cancel, close or
 *                            finalize to
 *                            C_Sign's return (-1 if neither came first)
 *   quit                     exit 0
 *
 * MECH is one of SHA256-RSA-PKCS, RSA-PKCS-PSS (SHA-256, MGF1-SHA256, salt
 * 32), ECDSA, ECDSA-SHA256. Protocol errors answer "ERROR text".
 *
 * It builds for Linux (gcc) and for Windows (x86_64-w64-mingw32-gcc, run
 * under wine by tests/windows), where it loads csctoken.dll.
 */
#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csctoken.h"

static CK_FUNCTION_LIST_PTR p11;
static CK_FUNCTION_LIST_3_0_PTR p3; /* C_SessionCancel */
static CK_SESSION_HANDLE session;

static const char *rvname(CK_RV rv)
{
	static char buf[32];
	switch (rv) {
#define N(x) \
	case x:  \
		return #x;
		N(CKR_OK) N(CKR_SLOT_ID_INVALID) N(CKR_GENERAL_ERROR) N(CKR_FUNCTION_FAILED) N(CKR_ARGUMENTS_BAD)
		N(CKR_DATA_INVALID) N(CKR_DATA_LEN_RANGE) N(CKR_DEVICE_ERROR) N(CKR_DEVICE_REMOVED)
		N(CKR_FUNCTION_CANCELED) N(CKR_FUNCTION_NOT_SUPPORTED) N(CKR_KEY_HANDLE_INVALID)
		N(CKR_KEY_TYPE_INCONSISTENT) N(CKR_MECHANISM_INVALID) N(CKR_MECHANISM_PARAM_INVALID)
		N(CKR_OBJECT_HANDLE_INVALID) N(CKR_OPERATION_ACTIVE) N(CKR_OPERATION_NOT_INITIALIZED)
		N(CKR_PIN_INCORRECT) N(CKR_PIN_LOCKED) N(CKR_PIN_EXPIRED) N(CKR_SESSION_CLOSED)
		N(CKR_SESSION_HANDLE_INVALID) N(CKR_TOKEN_NOT_PRESENT) N(CKR_USER_ALREADY_LOGGED_IN)
		N(CKR_USER_NOT_LOGGED_IN) N(CKR_USER_TYPE_INVALID) N(CKR_BUFFER_TOO_SMALL)
		N(CKR_CRYPTOKI_NOT_INITIALIZED) N(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef N
	}
	snprintf(buf, sizeof(buf), "CKR_0x%lx", (unsigned long)rv);
	return buf;
}

static void hex(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

static int unhex(const char *s, unsigned char *out, size_t max, size_t *n)
{
	size_t len = strlen(s);
	if (len % 2 != 0 || len / 2 > max)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned int b;
		if (sscanf(s + 2 * i, "%2x", &b) != 1)
			return -1;
		out[i] = (unsigned char)b;
	}
	*n = len / 2;
	return 0;
}

/* find1 finds the one object of a class labelled label. */
static CK_RV find1(CK_OBJECT_CLASS cls, const char *label, CK_OBJECT_HANDLE *o)
{
	CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	CK_RV rv = p11->C_FindObjectsInit(session, t, 2);
	if (rv != CKR_OK)
		return rv;
	rv = p11->C_FindObjects(session, found, 2, &n);
	p11->C_FindObjectsFinal(session);
	if (rv != CKR_OK)
		return rv;
	if (n != 1)
		return CKR_KEY_HANDLE_INVALID;
	*o = found[0];
	return CKR_OK;
}

static void cmd_cert(const char *label)
{
	CK_OBJECT_HANDLE c;
	unsigned char der[8192];
	CK_ATTRIBUTE a = {CKA_VALUE, der, sizeof(der)};
	CK_RV rv = find1(CKO_CERTIFICATE, label, &c);
	if (rv == CKR_OK)
		rv = p11->C_GetAttributeValue(session, c, &a, 1);
	printf("%s", rvname(rv));
	if (rv == CKR_OK) {
		putchar(' ');
		hex(der, a.ulValueLen);
	}
	putchar('\n');
}

/* A C_Sign call, possibly on another thread. */
struct signing {
	unsigned char in[1024], sig[1024];
	size_t inlen;
	CK_ULONG siglen;
	CK_RV rv;
	long done; /* now_ms() when C_Sign returned */
};

static long now_ms(void);

static void do_sign(struct signing *s)
{
	s->siglen = sizeof(s->sig);
	s->rv = p11->C_Sign(session, s->in, s->inlen, s->sig, &s->siglen);
	s->done = now_ms();
}

#ifdef _WIN32
static DWORD WINAPI sign_thread(LPVOID arg)
{
	do_sign(arg);
	return 0;
}

static long now_ms(void)
{
	return (long)GetTickCount64();
}

static void sleep_ms(long ms)
{
	Sleep((DWORD)ms);
}
#else
static void *sign_thread(void *arg)
{
	do_sign(arg);
	return NULL;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}
#endif

/* sign_init parses a mechanism name and input and starts a signature with
 * the key labelled label; it prints an error line and returns non-zero on
 * failure. */
static int sign_init(const char *mname, const char *in_hex, const char *label, struct signing *s)
{
	static CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
	CK_MECHANISM mech = {0, NULL, 0};
	CK_OBJECT_HANDLE key;
	CK_RV rv;

	if (strcmp(mname, "SHA256-RSA-PKCS") == 0) {
		mech.mechanism = CKM_SHA256_RSA_PKCS;
	} else if (strcmp(mname, "RSA-PKCS-PSS") == 0) {
		mech.mechanism = CKM_RSA_PKCS_PSS;
		mech.pParameter = &pss;
		mech.ulParameterLen = sizeof(pss);
	} else if (strcmp(mname, "ECDSA") == 0) {
		mech.mechanism = CKM_ECDSA;
	} else if (strcmp(mname, "ECDSA-SHA256") == 0) {
		mech.mechanism = CKM_ECDSA_SHA256;
	} else {
		printf("ERROR unknown mechanism %s\n", mname);
		return -1;
	}
	if (unhex(in_hex, s->in, sizeof(s->in), &s->inlen) != 0) {
		printf("ERROR bad hex input\n");
		return -1;
	}
	rv = find1(CKO_PRIVATE_KEY, label, &key);
	if (rv == CKR_OK)
		rv = p11->C_SignInit(session, &mech, key);
	if (rv != CKR_OK) {
		printf("%s\n", rvname(rv));
		return -1;
	}
	return 0;
}

static void cmd_sign(const char *mname, const char *in_hex, const char *label)
{
	struct signing s;

	if (sign_init(mname, in_hex, label, &s) != 0)
		return;
	do_sign(&s);
	printf("%s", rvname(s.rv));
	if (s.rv == CKR_OK) {
		putchar(' ');
		hex(s.sig, s.siglen);
	}
	putchar('\n');
}

static void cmd_sign_finalize(long delay, const char *mname, const char *in_hex, const char *label)
{
	static struct signing s;
	CK_RV frv;
	long start;
#ifdef _WIN32
	HANDLE th;
#else
	pthread_t th;
#endif

	if (sign_init(mname, in_hex, label, &s) != 0)
		return;
#ifdef _WIN32
	th = CreateThread(NULL, 0, sign_thread, &s, 0, NULL);
	if (th == NULL) {
		printf("ERROR CreateThread\n");
		return;
	}
#else
	if (pthread_create(&th, NULL, sign_thread, &s) != 0) {
		printf("ERROR pthread_create\n");
		return;
	}
#endif
	sleep_ms(delay);
	start = now_ms();
	frv = p11->C_Finalize(NULL);
	start = now_ms() - start;
#ifdef _WIN32
	WaitForSingleObject(th, INFINITE);
	CloseHandle(th);
#else
	pthread_join(th, NULL);
#endif
	printf("%s %s %ld\n", rvname(frv), rvname(s.rv), start);
}

/* The C_Sign of sign-start, waited for by sign-wait; interrupted is when
 * the last cancel or finalize began (-1: none since sign-start). */
static struct signing pending;
static int pending_running;
static long interrupted = -1;
#ifdef _WIN32
static HANDLE pending_thread;
#else
static pthread_t pending_thread;
#endif

static void cmd_sign_start(const char *mname, const char *in_hex, const char *label)
{
	if (pending_running) {
		printf("ERROR a sign-start is under way\n");
		return;
	}
	if (sign_init(mname, in_hex, label, &pending) != 0)
		return;
	interrupted = -1;
#ifdef _WIN32
	pending_thread = CreateThread(NULL, 0, sign_thread, &pending, 0, NULL);
	if (pending_thread == NULL) {
		printf("ERROR CreateThread\n");
		return;
	}
#else
	if (pthread_create(&pending_thread, NULL, sign_thread, &pending) != 0) {
		printf("ERROR pthread_create\n");
		return;
	}
#endif
	pending_running = 1;
	printf("CKR_OK\n");
}

static void cmd_cancel(void)
{
	long start = now_ms();
	CK_RV rv;

	if (interrupted < 0)
		interrupted = start;
	rv = p3->C_SessionCancel(session, CKF_SIGN);
	printf("%s %ld\n", rvname(rv), now_ms() - start);
}

static void cmd_close(void)
{
	long start = now_ms();
	CK_RV rv;

	if (pending_running && interrupted < 0)
		interrupted = start;
	rv = p11->C_CloseSession(session);
	printf("%s %ld\n", rvname(rv), now_ms() - start);
}

static void cmd_sign_wait(void)
{
	if (!pending_running) {
		printf("ERROR no sign-start under way\n");
		return;
	}
#ifdef _WIN32
	WaitForSingleObject(pending_thread, INFINITE);
	CloseHandle(pending_thread);
#else
	pthread_join(pending_thread, NULL);
#endif
	pending_running = 0;
	printf("%s %ld", rvname(pending.rv), interrupted < 0 ? -1L : pending.done - interrupted);
	if (pending.rv == CKR_OK) {
		putchar(' ');
		hex(pending.sig, pending.siglen);
	}
	putchar('\n');
}

/* split cuts s at its first space: s keeps the first word, the result is
 * the rest (NULL when there is no space). */
static char *split(char *s)
{
	char *sp = s == NULL ? NULL : strchr(s, ' ');
	if (sp != NULL)
		*sp++ = '\0';
	return sp;
}

int main(int argc, char **argv)
{
	CK_C_GetFunctionList gfl;
	CK_C_GetInterface gi;
	CK_INTERFACE_PTR in = NULL;
	char line[4096];

	if (argc != 2) {
		fprintf(stderr, "usage: session LIB\n");
		return 2;
	}
#ifdef _WIN32
	HMODULE lib = LoadLibraryA(argv[1]);
	if (lib == NULL) {
		fprintf(stderr, "LoadLibrary %s: error %lu\n", argv[1], (unsigned long)GetLastError());
		return 1;
	}
	*(FARPROC *)&gfl = GetProcAddress(lib, "C_GetFunctionList");
	*(FARPROC *)&gi = GetProcAddress(lib, "C_GetInterface");
#else
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
		return 1;
	}
	*(void **)&gfl = dlsym(lib, "C_GetFunctionList");
	*(void **)&gi = dlsym(lib, "C_GetInterface");
#endif
	if (gfl == NULL || gfl(&p11) != CKR_OK) {
		fprintf(stderr, "C_GetFunctionList failed\n");
		return 1;
	}
	if (gi == NULL || gi((CK_UTF8CHAR_PTR) "PKCS 11", &(CK_VERSION){3, 0}, &in, 0) != CKR_OK || in == NULL) {
		fprintf(stderr, "C_GetInterface(\"PKCS 11\", 3.0) failed\n");
		return 1;
	}
	p3 = in->pFunctionList;
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Each answer is flushed before the next command is read (on Windows
	 * _IOLBF means full buffering). */
	while (fflush(stdout) == 0 && fgets(line, sizeof(line), stdin) != NULL) {
		char *nl = strchr(line, '\n'), *arg;
		if (nl != NULL)
			*nl = '\0';
		arg = strchr(line, ' ');
		if (arg != NULL)
			*arg++ = '\0';
		else
			arg = line + strlen(line);

		if (strcmp(line, "init") == 0) {
			CK_C_INITIALIZE_ARGS a = {0};
			a.flags = CKF_OS_LOCKING_OK;
			printf("%s\n", rvname(p11->C_Initialize(&a)));
		} else if (strcmp(line, "slots") == 0) {
			CK_ULONG n = 0;
			CK_RV rv = p11->C_GetSlotList(CK_TRUE, NULL, &n);
			printf("%s %lu\n", rvname(rv), (unsigned long)n);
		} else if (strcmp(line, "open") == 0) {
			CK_RV rv = p11->C_OpenSession(strtoul(arg, NULL, 10), CKF_SERIAL_SESSION | CKF_RW_SESSION,
						      NULL, NULL, &session);
			printf("%s\n", rvname(rv));
		} else if (strcmp(line, "login") == 0) {
			printf("%s\n", rvname(p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)arg, strlen(arg))));
		} else if (strcmp(line, "logout") == 0) {
			printf("%s\n", rvname(p11->C_Logout(session)));
		} else if (strcmp(line, "flags") == 0) {
			CK_SESSION_INFO si;
			CK_TOKEN_INFO ti;
			CK_RV rv = p11->C_GetSessionInfo(session, &si);
			if (rv == CKR_OK)
				rv = p11->C_GetTokenInfo(si.slotID, &ti);
			printf("%s 0x%lx\n", rvname(rv), rv == CKR_OK ? (unsigned long)ti.flags : 0UL);
		} else if (strcmp(line, "cert") == 0) {
			cmd_cert(arg);
		} else if (strcmp(line, "sign") == 0) {
			char *in = strchr(arg, ' '), *label = NULL;
			if (in != NULL) {
				*in++ = '\0';
				label = strchr(in, ' ');
			}
			if (label == NULL) {
				printf("ERROR usage: sign MECH HEX LABEL\n");
				continue;
			}
			*label++ = '\0';
			cmd_sign(arg, in, label);
		} else if (strcmp(line, "sign-finalize") == 0) {
			char *mname = split(arg), *in = split(mname), *label = split(in);
			if (label == NULL) {
				printf("ERROR usage: sign-finalize MS MECH HEX LABEL\n");
				continue;
			}
			cmd_sign_finalize(strtol(arg, NULL, 10), mname, in, label);
		} else if (strcmp(line, "sign-start") == 0) {
			char *mname = arg, *in = split(mname), *label = split(in);
			if (label == NULL) {
				printf("ERROR usage: sign-start MECH HEX LABEL\n");
				continue;
			}
			cmd_sign_start(mname, in, label);
		} else if (strcmp(line, "cancel") == 0) {
			cmd_cancel();
		} else if (strcmp(line, "close") == 0) {
			cmd_close();
		} else if (strcmp(line, "sign-wait") == 0) {
			cmd_sign_wait();
		} else if (strcmp(line, "finalize") == 0) {
			if (pending_running && interrupted < 0)
				interrupted = now_ms();
			printf("%s\n", rvname(p11->C_Finalize(NULL)));
		} else if (strcmp(line, "quit") == 0) {
			return 0;
		} else {
			printf("ERROR unknown command %s\n", line);
		}
	}
	return 0;
}
