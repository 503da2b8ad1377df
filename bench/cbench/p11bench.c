/*
 * p11bench: a small C benchmark host for PKCS#11 libraries, compiled and run
 * by the benchmarks in bench/ (no Go program ever loads libcsctoken.so).
 * It dlopens any PKCS#11 library (libcsctoken.so, p11-kit-client.so,
 * libsofthsm2.so), so that every library is driven by the same code.
 *
 *   p11bench sign --lib L --key LABEL --mech rsa|ec [--token T] [--pin P]
 *                 [--threads N] [--warmup W] [--ops N[,N...]] [--sync] [--mem]
 *       One session per thread, each signature C_SignInit + C_Sign(NULL)
 *       (the size query) + C_Sign. --ops lists phases run one after the
 *       other on the same sessions (a RESULT line each; with --mem a MEM
 *       line each). With --sync it prints READY after the setup and the
 *       warm-up and waits for a line on stdin before the first phase.
 *   p11bench cold --lib L --key LABEL --mech rsa|ec [--token T] [--pin P]
 *                 [--settle-ms MS]
 *       Times dlopen .. the first signature, phase by phase (COLD line).
 *       --settle-ms sleeps that long after dlopen (untimed), so that a Go
 *       library's runtime has started before C_Initialize.
 *   p11bench start --lib L [--settle-ms MS]
 *       Times dlopen and C_Initialize alone (START line), then C_Finalize.
 *   p11bench list --lib L [--token T] [--expect N] [--sync] [--settle-ms MS]
 *       Times C_Initialize + C_GetSlotList + C_OpenSession + finding every
 *       certificate (LIST line). --expect N polls until N certificates are
 *       found (cache warm-up). With --sync: PHASE listed, wait for a line,
 *       then metadata calls only (C_GetTokenInfo, C_GetSlotList,
 *       C_GetSessionInfo, C_FindObjects*), PHASE metadata, wait, exit.
 *
 * Output on stdout, one record a line, key=value:
 *   RESULT phase=K ops= threads= wall_ns= cpu_ns= p50_ns= p90_ns= p99_ns= max_ns=
 *   MEM when=... rss_kib= hwm_kib=
 *   COLD dlopen_ns= init_ns= slots_ns= open_ns= login_ns= find_ns= sign_ns= total_ns=
 *   START dlopen_ns= init_ns= total_ns=
 *   LIST certs= init_ns= slots_ns= open_ns= find_ns= total_ns=
 * cpu_ns is the user+system time of the whole process (every thread,
 * including the library's own) during the phase. Errors go to stderr and
 * make the exit status 1.
 */
#include <dlfcn.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

#define MAX_PHASES 8

static CK_FUNCTION_LIST_PTR p11;
static const char *opt_lib, *opt_token, *opt_key, *opt_mech = "rsa", *opt_pin;
static int opt_threads = 1, opt_warmup = 5, opt_sync, opt_mem, opt_expect, opt_settle_ms;
static long opt_ops[MAX_PHASES] = {1000};
static int nphases = 1;

static CK_SLOT_ID slot;
static CK_OBJECT_HANDLE key;
static CK_MECHANISM mech;
static CK_BYTE data[32];

static void die(const char *fmt, ...)
{
	va_list ap;
	fputs("p11bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

#define MUST(call)                                                              \
	do {                                                                    \
		CK_RV rv_ = (call);                                             \
		if (rv_ != CKR_OK)                                              \
			die("%s:%d: %s: 0x%lx", __FILE__, __LINE__, #call,      \
			    (unsigned long)rv_);                                \
	} while (0)

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
	       ((long long)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

/* status_kib reads a "Name:   123 kB" line of /proc/self/status. */
static long status_kib(const char *name)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(name);
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void print_mem(const char *when)
{
	printf("MEM when=%s rss_kib=%ld hwm_kib=%ld\n", when, status_kib("VmRSS"), status_kib("VmHWM"));
	fflush(stdout);
}

static void wait_line(void)
{
	char line[64];
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		die("stdin closed while waiting");
}

static void load(void)
{
	void *lib = dlopen(opt_lib, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		die("dlopen %s: %s", opt_lib, dlerror());
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	if (!gfl)
		die("no C_GetFunctionList in %s", opt_lib);
	MUST(gfl(&p11));
}

/* settle sleeps --settle-ms (after dlopen, outside the timings). */
static void settle(void)
{
	if (opt_settle_ms <= 0)
		return;
	struct timespec ts = {opt_settle_ms / 1000, (long)(opt_settle_ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void initialize(void)
{
	CK_C_INITIALIZE_ARGS args;
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	MUST(p11->C_Initialize(&args));
}

/* find_slot picks the token labelled opt_token, or the first token. */
static void find_slot(void)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	MUST(p11->C_GetSlotList(CK_TRUE, slots, &n));
	for (CK_ULONG i = 0; i < n; i++) {
		if (!opt_token) {
			slot = slots[i];
			return;
		}
		CK_TOKEN_INFO ti;
		MUST(p11->C_GetTokenInfo(slots[i], &ti));
		size_t len = strlen(opt_token);
		if (len <= sizeof(ti.label) && memcmp(ti.label, opt_token, len) == 0) {
			size_t j = len;
			while (j < sizeof(ti.label) && ti.label[j] == ' ')
				j++;
			if (j == sizeof(ti.label)) {
				slot = slots[i];
				return;
			}
		}
	}
	die("no token %s among %lu slots", opt_token ? opt_token : "(any)", (unsigned long)n);
}

static CK_SESSION_HANDLE open_session(void)
{
	CK_SESSION_HANDLE s;
	MUST(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
	return s;
}

static void login(CK_SESSION_HANDLE s)
{
	if (!opt_pin)
		return;
	CK_RV rv = p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)opt_pin, strlen(opt_pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		die("C_Login: 0x%lx", (unsigned long)rv);
}

/* find_objects returns how many objects match; the first in *first. */
static CK_ULONG find_objects(CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *first)
{
	CK_OBJECT_HANDLE buf[256];
	CK_ULONG got, total = 0;
	MUST(p11->C_FindObjectsInit(s, tmpl, n));
	do {
		MUST(p11->C_FindObjects(s, buf, 256, &got));
		if (got > 0 && total == 0 && first)
			*first = buf[0];
		total += got;
	} while (got > 0);
	MUST(p11->C_FindObjectsFinal(s));
	return total;
}

static void find_key(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_LABEL, (void *)opt_key, strlen(opt_key)},
	};
	CK_ULONG n = find_objects(s, tmpl, 2, &key);
	if (n != 1)
		die("%lu private keys labelled %s, want 1", (unsigned long)n, opt_key);
}

static void setup_mech(void)
{
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (CK_BYTE)(i * 7 + 1);
	if (strcmp(opt_mech, "rsa") == 0)
		mech.mechanism = CKM_SHA256_RSA_PKCS; /* hash-and-sign of a 32-byte message */
	else if (strcmp(opt_mech, "ec") == 0)
		mech.mechanism = CKM_ECDSA; /* the 32 bytes are the SHA-256 hash */
	else
		die("--mech rsa or ec");
}

/* sign_once is one signature: C_SignInit, the size query, C_Sign. */
static void sign_once(CK_SESSION_HANDLE s)
{
	CK_BYTE sig[1024];
	CK_ULONG len = 0;
	MUST(p11->C_SignInit(s, &mech, key));
	MUST(p11->C_Sign(s, data, sizeof(data), NULL, &len));
	if (len == 0 || len > sizeof(sig))
		die("C_Sign size query: %lu", (unsigned long)len);
	MUST(p11->C_Sign(s, data, sizeof(data), sig, &len));
}

/* ---- sign ---------------------------------------------------------------- */

static pthread_barrier_t warm_bar, start_bar, end_bar;
static atomic_long next_op;
static long phase_ops;
static long long *lat;

static void *worker(void *arg)
{
	(void)arg;
	CK_SESSION_HANDLE s = open_session();
	for (int i = 0; i < opt_warmup; i++)
		sign_once(s);
	pthread_barrier_wait(&warm_bar);
	for (int ph = 0; ph < nphases; ph++) {
		pthread_barrier_wait(&start_bar);
		for (;;) {
			long i = atomic_fetch_add(&next_op, 1);
			if (i >= phase_ops)
				break;
			long long t0 = now_ns();
			sign_once(s);
			lat[i] = now_ns() - t0;
		}
		pthread_barrier_wait(&end_bar);
	}
	MUST(p11->C_CloseSession(s));
	return NULL;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static long long pct(long long *v, long n, int p)
{
	long i = (long)((double)n * p / 100.0);
	if (i >= n)
		i = n - 1;
	return v[i];
}

static void run_sign(void)
{
	if (opt_mem)
		print_mem("start");
	load();
	initialize();
	find_slot();
	CK_SESSION_HANDLE s = open_session();
	login(s);
	find_key(s);
	setup_mech();
	if (opt_mem)
		print_mem("login");
	long maxops = 0;
	for (int i = 0; i < nphases; i++)
		if (opt_ops[i] > maxops)
			maxops = opt_ops[i];
	lat = calloc((size_t)maxops + 1, sizeof(*lat));
	if (!lat)
		die("out of memory");
	pthread_barrier_init(&warm_bar, NULL, (unsigned)opt_threads + 1);
	pthread_barrier_init(&start_bar, NULL, (unsigned)opt_threads + 1);
	pthread_barrier_init(&end_bar, NULL, (unsigned)opt_threads + 1);
	pthread_t *th = calloc((size_t)opt_threads, sizeof(*th));
	for (int i = 0; i < opt_threads; i++)
		if (pthread_create(&th[i], NULL, worker, NULL) != 0)
			die("pthread_create");
	pthread_barrier_wait(&warm_bar); /* every session has signed */
	if (opt_mem)
		print_mem("warm");
	if (opt_sync) {
		puts("READY");
		wait_line();
	}
	for (int ph = 0; ph < nphases; ph++) {
		phase_ops = opt_ops[ph];
		atomic_store(&next_op, 0);
		long long c0 = cpu_ns(), t0 = now_ns();
		pthread_barrier_wait(&start_bar);
		pthread_barrier_wait(&end_bar);
		long long t1 = now_ns(), c1 = cpu_ns();
		qsort(lat, (size_t)phase_ops, sizeof(*lat), cmp_ll);
		printf("RESULT phase=%d ops=%ld threads=%d wall_ns=%lld cpu_ns=%lld p50_ns=%lld p90_ns=%lld p99_ns=%lld max_ns=%lld\n",
		       ph, phase_ops, opt_threads, t1 - t0, c1 - c0, pct(lat, phase_ops, 50), pct(lat, phase_ops, 90),
		       pct(lat, phase_ops, 99), lat[phase_ops - 1]);
		fflush(stdout);
		if (opt_mem) {
			char when[32];
			snprintf(when, sizeof(when), "phase%d", ph);
			print_mem(when);
		}
	}
	for (int i = 0; i < opt_threads; i++)
		pthread_join(th[i], NULL);
	MUST(p11->C_CloseSession(s));
	MUST(p11->C_Finalize(NULL));
}

/* ---- cold ---------------------------------------------------------------- */

static void run_cold(void)
{
	long long t0 = now_ns();
	load();
	long long t1 = now_ns();
	settle();
	long long ts = now_ns();
	t0 += ts - t1;
	t1 = ts;
	initialize();
	long long t2 = now_ns();
	find_slot();
	long long t3 = now_ns();
	CK_SESSION_HANDLE s = open_session();
	long long t4 = now_ns();
	login(s);
	long long t5 = now_ns();
	find_key(s);
	setup_mech();
	long long t6 = now_ns();
	sign_once(s);
	long long t7 = now_ns();
	printf("COLD dlopen_ns=%lld init_ns=%lld slots_ns=%lld open_ns=%lld login_ns=%lld find_ns=%lld sign_ns=%lld total_ns=%lld\n",
	       t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t7 - t0);
	fflush(stdout);
	MUST(p11->C_Finalize(NULL));
}

/* ---- start --------------------------------------------------------------- */

static void run_start(void)
{
	long long t0 = now_ns();
	load();
	long long t1 = now_ns();
	settle();
	long long ts = now_ns();
	t0 += ts - t1;
	t1 = ts;
	initialize();
	long long t2 = now_ns();
	printf("START dlopen_ns=%lld init_ns=%lld total_ns=%lld\n", t1 - t0, t2 - t1, t2 - t0);
	fflush(stdout);
	MUST(p11->C_Finalize(NULL));
}

/* ---- list ---------------------------------------------------------------- */

static CK_ULONG find_certs(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	return find_objects(s, tmpl, 1, NULL);
}

static void run_list(void)
{
	load();
	settle();
	long long t0 = now_ns();
	initialize();
	long long t1 = now_ns();
	find_slot();
	long long t2 = now_ns();
	CK_SESSION_HANDLE s = open_session();
	long long t3 = now_ns();
	CK_ULONG n = find_certs(s);
	long long t4 = now_ns();
	if (opt_expect > 0) {
		/* Cache warm-up: wait for the listing. */
		for (int i = 0; i < 600 && n < (CK_ULONG)opt_expect; i++) {
			struct timespec ts = {0, 100000000};
			nanosleep(&ts, NULL);
			n = find_certs(s);
		}
		if (n < (CK_ULONG)opt_expect)
			die("%lu certificates after 60 s, want %d", (unsigned long)n, opt_expect);
	}
	printf("LIST certs=%lu init_ns=%lld slots_ns=%lld open_ns=%lld find_ns=%lld total_ns=%lld\n", (unsigned long)n,
	       t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0);
	if (opt_sync) {
		puts("PHASE listed");
		wait_line();
		long calls = 0;
		for (int i = 0; i < 200; i++) {
			CK_TOKEN_INFO ti;
			CK_SESSION_INFO si;
			CK_SLOT_ID slots[64];
			CK_ULONG ns = 64;
			MUST(p11->C_GetTokenInfo(slot, &ti));
			MUST(p11->C_GetSlotList(CK_TRUE, slots, &ns));
			MUST(p11->C_GetSessionInfo(s, &si));
			calls += 3;
			if (i % 20 == 0) {
				find_certs(s);
				find_objects(s, NULL, 0, NULL);
				calls += 2;
			}
		}
		printf("PHASE metadata calls=%ld\n", calls);
		wait_line();
	}
	fflush(stdout);
	MUST(p11->C_Finalize(NULL));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"lib", required_argument, 0, 'l'},  {"token", required_argument, 0, 't'},
		{"key", required_argument, 0, 'k'},  {"mech", required_argument, 0, 'm'},
		{"pin", required_argument, 0, 'p'},  {"threads", required_argument, 0, 'n'},
		{"warmup", required_argument, 0, 'w'}, {"ops", required_argument, 0, 'o'},
		{"sync", no_argument, 0, 's'},       {"mem", no_argument, 0, 'M'},
		{"expect", required_argument, 0, 'e'}, {"settle-ms", required_argument, 0, 'S'},
		{0, 0, 0, 0},
	};
	if (argc < 2)
		die("usage: p11bench sign|cold|list|start --lib L ...");
	const char *mode = argv[1];
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': opt_lib = optarg; break;
		case 't': opt_token = optarg; break;
		case 'k': opt_key = optarg; break;
		case 'm': opt_mech = optarg; break;
		case 'p': opt_pin = optarg; break;
		case 'n': opt_threads = atoi(optarg); break;
		case 'w': opt_warmup = atoi(optarg); break;
		case 's': opt_sync = 1; break;
		case 'M': opt_mem = 1; break;
		case 'e': opt_expect = atoi(optarg); break;
		case 'S': opt_settle_ms = atoi(optarg); break;
		case 'o': {
			char *p = optarg;
			for (nphases = 0; nphases < MAX_PHASES && *p; nphases++) {
				opt_ops[nphases] = strtol(p, &p, 10);
				if (opt_ops[nphases] <= 0)
					die("--ops: positive counts");
				if (*p == ',')
					p++;
			}
			break;
		}
		default: die("bad option");
		}
	}
	if (!opt_lib || opt_threads < 1 || nphases < 1)
		die("--lib is required; --threads and --ops positive");
	if (strcmp(mode, "sign") == 0 || strcmp(mode, "cold") == 0) {
		if (!opt_key)
			die("--key is required");
		if (strcmp(mode, "sign") == 0)
			run_sign();
		else
			run_cold();
	} else if (strcmp(mode, "list") == 0) {
		run_list();
	} else if (strcmp(mode, "start") == 0) {
		run_start();
	} else {
		die("unknown mode %s", mode);
	}
	return 0;
}
