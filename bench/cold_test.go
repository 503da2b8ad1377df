package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
	"github.com/csctoken/csctoken/rssp/keystore"
)

// BenchmarkColdStartModule is BenchmarkColdStart in process, for
// profiling (go test -cpuprofile): each iteration a fresh module.Module
// with its own CSC client (a new TLS connection), the config read from
// disk, the listing cache warm, the service token in the file token store;
// Initialize, GetSlotList, OpenSession, Login, finding the key, SignInit +
// size query + Sign (RSA-2048), Finalize. What the C host adds (dlopen,
// the Go runtime's start, process-wide caches such as the system trust
// roots, which this process loads once) is not in it.
//
// Metrics: ms (median, Initialize → first signature), init-ms, login-ms,
// find-ms, sign-ms (medians of the phases), req/run.
func BenchmarkColdStartModule(b *testing.B) {
	srv := startServer(b, serverOptions{})
	id := srv.addCredential(b, keystore.RSA2048, 100)
	srv.addCredential(b, keystore.ECP256, 100)
	dir := b.TempDir()
	cfgHome := filepath.Join(dir, "config")
	srv.login(b, cfgHome)
	conf := srv.moduleConfig(b, filepath.Join(dir, "module"))
	store, err := tokenstore.New(tokenstore.Options{Dir: filepath.Join(cfgHome, "csctoken", "tokens"), NoKeyring: true})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 32)
	run := func() (init, login, find, sign time.Duration) {
		t0 := time.Now()
		m := module.New(module.Options{
			LoadConfig:       func() (*config.Config, error) { return config.Load(conf) },
			NewService:       cscservice.Factory(cscservice.WithSecretStore(store)),
			FirstListingWait: 3 * time.Second, // as the C library
		})
		must := func(what string, err error) {
			if err != nil {
				b.Fatalf("%s: %v", what, err)
			}
		}
		must("Initialize", m.Initialize(module.InitArgs{Flags: ck.CKF_OS_LOCKING_OK}))
		defer m.Finalize()
		slots, err := m.GetSlotList(true)
		must("GetSlotList", err)
		h, err := m.OpenSession(slots[0], ck.CKF_SERIAL_SESSION|ck.CKF_RW_SESSION)
		must("OpenSession", err)
		t1 := time.Now()
		must("Login", m.Login(h, ck.CKU_USER, []byte(pin)))
		t2 := time.Now()
		must("FindObjectsInit", m.FindObjectsInit(h, []ck.Attribute{
			{Type: ck.CKA_CLASS, Value: ck.ULongBytes(ck.CKO_PRIVATE_KEY)}, {Type: ck.CKA_LABEL, Value: []byte(id)}}))
		keys, err := m.FindObjects(h, 10)
		must("FindObjects", err)
		must("FindObjectsFinal", m.FindObjectsFinal(h))
		if len(keys) != 1 {
			b.Fatalf("%d keys labelled %s", len(keys), id)
		}
		t3 := time.Now()
		must("SignInit", m.SignInit(h, ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, keys[0]))
		n, err := m.Sign(h, data, nil)
		must("Sign size", err)
		sig := make([]byte, n)
		_, err = m.Sign(h, data, sig)
		must("Sign", err)
		t4 := time.Now()
		return t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3)
	}
	run() // the listing cache, the system roots of this process
	srv.quiet(100*time.Millisecond, 10*time.Second)
	var total, inits, logins, finds, signs []time.Duration
	r0 := srv.requests()
	b.ResetTimer()
	for range b.N {
		i, l, f, s := run()
		total = append(total, i+l+f+s)
		inits, logins, finds, signs = append(inits, i), append(logins, l), append(finds, f), append(signs, s)
	}
	b.StopTimer()
	srv.quiet(100*time.Millisecond, 10*time.Second)
	b.ReportMetric(ms(median(total)), "ms")
	b.ReportMetric(ms(median(inits)), "init-ms")
	b.ReportMetric(ms(median(logins)), "login-ms")
	b.ReportMetric(ms(median(finds)), "find-ms")
	b.ReportMetric(ms(median(signs)), "sign-ms")
	b.ReportMetric(float64(srv.requests()-r0)/float64(b.N), "req/run")
	b.Logf("load average %s", loadavg())
}

// BenchmarkColdStartParts splits BenchmarkColdStart's figure (C host
// processes, RSA-2048, argon2=test) into what the Go runtime costs and what
// the module does:
//
//	go-runtime   dlopen + C_Initialize with an empty config: the loader
//	             (relocations) and the Go runtime's start, which a c-shared
//	             library pays before its first call returns (ms, with
//	             dlopen-ms and init-ms)
//	module-init  C_Initialize alone, the runtime started (the host sleeps
//	             after dlopen): config, client, token store, listing cache
//	settled      C_Initialize → first signature, the runtime started (same
//	             sleep): C_Initialize, C_Login, finding the key, C_Sign (ms,
//	             with init-ms, login-ms and sign-ms)
func BenchmarkColdStartParts(b *testing.B) {
	need(b, "gcc", "p11-kit-1")
	lib := library(b)
	srv := startServer(b, serverOptions{})
	id := srv.addCredential(b, keystore.RSA2048, 100)
	srv.addCredential(b, keystore.ECP256, 100)
	env := srv.hostEnv(b)
	cold := []string{"cold", "--lib", lib, "--token", svcName, "--key", id, "--mech", "rsa", "--pin", pin}
	runHost(b, env, cold...) // the listing cache
	empty := filepath.Join(b.TempDir(), "empty.toml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	emptyEnv := append(baseEnv(), "HOME="+b.TempDir(), "CSCTOKEN_CONFIG="+empty)
	const settle = "150"
	for _, v := range []struct {
		name, word string
		env        []string
		args       []string
		extra      map[string]string // metric → field
	}{
		{"go-runtime", "START", emptyEnv, []string{"start", "--lib", lib},
			map[string]string{"dlopen-ms": "dlopen_ns", "init-ms": "init_ns"}},
		{"module-init", "START", env, []string{"start", "--lib", lib, "--settle-ms", settle}, nil},
		{"settled", "COLD", env, append(cold, "--settle-ms", settle),
			map[string]string{"init-ms": "init_ns", "login-ms": "login_ns", "sign-ms": "sign_ns"}},
	} {
		b.Run(v.name, func(b *testing.B) {
			var total []time.Duration
			extra := map[string][]time.Duration{}
			for range b.N {
				f, ok := lineFields(runHost(b, v.env, v.args...), v.word)
				if !ok {
					b.Fatalf("no %s line", v.word)
				}
				t := time.Duration(f.int(b, "total_ns"))
				if v.name != "go-runtime" {
					t -= time.Duration(f.int(b, "dlopen_ns")) // from C_Initialize on
				}
				total = append(total, t)
				for m, k := range v.extra {
					extra[m] = append(extra[m], time.Duration(f.int(b, k)))
				}
			}
			b.ReportMetric(ms(median(total)), "ms")
			for m, d := range extra {
				b.ReportMetric(ms(median(d)), m)
			}
		})
	}
	b.Logf("load average %s", loadavg())
}
