package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
	"github.com/csctoken/csctoken/rssp/keystore"
)

// result is one measured run.
type result struct {
	ops           int
	wall          time.Duration
	cpu           time.Duration // this process (server, Go clients) + the C host
	hostCPU       time.Duration // the C host alone; 0 in process
	p50, p90, p99 time.Duration
	reqs          int64 // CSC requests the server answered
	// handledP50 and handledP99 are the median and 99th percentile of the
	// time the rssp's handler took for a request (0 when no request reached
	// it): what is not the module, the connection or net/http.
	handledP50, handledP99 time.Duration
}

func (r result) tput() float64 { return float64(r.ops) / r.wall.Seconds() }

// report prints r; base, when set, is the direct client's run of the same
// key and thread count, and one, the same variant's single-thread run.
func (r result) report(b *testing.B, base, one *result) {
	b.ReportMetric(us(r.p50), "p50-µs")
	b.ReportMetric(us(r.p99), "p99-µs")
	b.ReportMetric(r.tput(), "sig/s")
	b.ReportMetric(us(r.cpu)/float64(r.ops), "cpu-µs/op")
	if r.hostCPU > 0 {
		b.ReportMetric(us(r.hostCPU)/float64(r.ops), "host-cpu-µs/op")
	}
	b.ReportMetric(float64(r.reqs)/float64(r.ops), "req/op")
	if r.handledP50 > 0 {
		b.ReportMetric(us(r.handledP50), "handler-p50-µs")
		b.ReportMetric(us(r.handledP99), "handler-p99-µs")
	}
	if base != nil {
		b.ReportMetric(float64(r.p50)/float64(base.p50), "p50/direct")
		b.ReportMetric(us(r.p50-base.p50), "p50-Δµs")
		b.ReportMetric(float64(r.p99)/float64(base.p99), "p99/direct")
		b.ReportMetric(r.tput()/base.tput(), "tput/direct")
	}
	if one != nil {
		b.ReportMetric(r.tput()/one.tput(), "tput/1thread")
	}
}

// runGo runs b.N operations spread over c goroutines, each with the
// operation newWorker made for it (after a warm-up of 3 operations).
func runGo(b *testing.B, srv *server, c int, newWorker func() (op func() error, done func())) result {
	b.Helper()
	ops := make([]func() error, c)
	for i := range ops {
		op, done := newWorker()
		defer done()
		for range 3 {
			if err := op(); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
		}
		ops[i] = op
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	r0, cpu0 := srv.requests(), cpuTime()
	b.ResetTimer()
	t0 := time.Now()
	for _, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1) - 1)
				if n >= b.N {
					return
				}
				t := time.Now()
				if err := op(); err != nil {
					errs <- err
					return
				}
				lat[n] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	b.StopTimer()
	cpu, reqs := cpuTime()-cpu0, srv.requests()-r0
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return result{ops: b.N, wall: wall, cpu: cpu, reqs: reqs,
		p50: percentile(lat, 50), p90: percentile(lat, 90), p99: percentile(lat, 99)}
}

// runSignHost runs b.N signatures in the C host: it sets up (C_Initialize,
// C_Login, one session per thread, warm-up) and then waits; the benchmark
// timer runs from the go-ahead to its RESULT line.
// extra, when set, is the CPU time of another process that serves the host
// (the p11-kit server), added to the run's cpu. prog is the host program:
// "" for p11bench sign, else one speaking its protocol (directhost).
func runSignHost(b *testing.B, srv *server, env []string, extra func() time.Duration, prog string, args ...string) result {
	b.Helper()
	args = append(args, "--ops", strconv.Itoa(b.N), "--sync")
	var h *host
	if prog == "" {
		h = startHost(b, env, append([]string{"sign"}, args...)...)
	} else {
		h = startProgram(b, prog, env, args...)
	}
	h.expect(b, "READY")
	if extra == nil {
		extra = func() time.Duration { return 0 }
	}
	srv.handledMark()
	r0, cpu0, x0 := srv.requests(), cpuTime(), extra()
	b.ResetTimer()
	h.send(b)
	f := h.expect(b, "RESULT")
	b.StopTimer()
	cpu, reqs := cpuTime()-cpu0+extra()-x0, srv.requests()-r0
	handled50, handled99 := srv.handledPct()
	h.wait(b)
	host := time.Duration(f.int(b, "cpu_ns"))
	return result{
		ops: int(f.int(b, "ops")), wall: time.Duration(f.int(b, "wall_ns")),
		cpu: cpu + host, hostCPU: host, reqs: reqs, handledP50: handled50, handledP99: handled99,
		p50: time.Duration(f.int(b, "p50_ns")), p90: time.Duration(f.int(b, "p90_ns")), p99: time.Duration(f.int(b, "p99_ns")),
	}
}

// runPaired alternates two operations in every goroutine (direct, then
// the module, and so on), so that both see the same load on a busy
// machine, and returns each one's latencies (b.N operations of each).
func runPaired(b *testing.B, srv *server, c int, newA, newB func() (func() error, func())) (result, result) {
	b.Helper()
	type pair struct{ a, b func() error }
	ops := make([]pair, c)
	for i := range ops {
		a, doneA := newA()
		o, doneB := newB()
		defer doneA()
		defer doneB()
		for range 3 {
			if err := a(); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
			if err := o(); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
		}
		ops[i] = pair{a, o}
	}
	latA, latB := make([]time.Duration, b.N), make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	b.ResetTimer()
	t0 := time.Now()
	for _, p := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1) - 1)
				if n >= 2*b.N {
					return
				}
				op, lat := p.a, latA
				if n%2 == 1 {
					op, lat = p.b, latB
				}
				t := time.Now()
				if err := op(); err != nil {
					errs <- err
					return
				}
				lat[n/2] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	res := func(lat []time.Duration) result {
		sortDurations(lat)
		return result{ops: b.N, wall: wall, p50: percentile(lat, 50), p90: percentile(lat, 90), p99: percentile(lat, 99)}
	}
	return res(latA), res(latB)
}

// keyCase is one key type of the signing benchmarks.
type keyCase struct {
	name     string
	kt       keystore.KeyType
	mech     uint   // PKCS#11 mechanism
	cmech    string // p11bench --mech
	signAlgo string // signHash signAlgo of the direct client
	input    []byte // what C_Sign gets
	digest   []byte // what signHash gets
}

func keyCases() []keyCase {
	msg := make([]byte, 32)
	for i := range msg {
		msg[i] = byte(i*7 + 1) // p11bench's data
	}
	sum := sha256.Sum256(msg)
	return []keyCase{
		{name: "RSA2048", kt: keystore.RSA2048, mech: ck.CKM_SHA256_RSA_PKCS, cmech: "rsa",
			signAlgo: csc.OIDSHA256WithRSA, input: msg, digest: sum[:]},
		{name: "P256", kt: keystore.ECP256, mech: ck.CKM_ECDSA, cmech: "ec",
			signAlgo: csc.OIDECDSAWithSHA256, input: msg, digest: msg},
	}
}

// newModule initializes an in-process module (the .so minus its C ABI)
// against the service of conf and logs in. preauthCap 0 is the default.
func newModule(b *testing.B, conf string, store cscclient.SecretStore, preauthCap int) *module.Module {
	b.Helper()
	m := module.New(module.Options{
		LoadConfig: func() (*config.Config, error) { return config.Load(conf) },
		NewService: cscservice.Factory(cscservice.WithSecretStore(store)),
		PreauthCap: preauthCap,
	})
	if err := m.Initialize(module.InitArgs{Flags: ck.CKF_OS_LOCKING_OK}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Finalize() })
	h, err := m.OpenSession(0, ck.CKF_SERIAL_SESSION|ck.CKF_RW_SESSION)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Login(h, ck.CKU_USER, []byte(pin)); err != nil {
		b.Fatalf("C_Login: %v", err)
	}
	return m
}

// findKey finds the private key labelled label.
func findKey(b *testing.B, m *module.Module, label string) module.ObjectHandle {
	b.Helper()
	h, err := m.OpenSession(0, ck.CKF_SERIAL_SESSION)
	if err != nil {
		b.Fatal(err)
	}
	defer m.CloseSession(h)
	tmpl := []ck.Attribute{{Type: ck.CKA_CLASS, Value: ck.ULongBytes(ck.CKO_PRIVATE_KEY)}, {Type: ck.CKA_LABEL, Value: []byte(label)}}
	if err := m.FindObjectsInit(h, tmpl); err != nil {
		b.Fatal(err)
	}
	keys, err := m.FindObjects(h, 10)
	if err != nil {
		b.Fatal(err)
	}
	_ = m.FindObjectsFinal(h)
	if len(keys) != 1 {
		b.Fatalf("%d private keys labelled %s", len(keys), label)
	}
	return keys[0]
}

// moduleWorker is one PKCS#11 session signing as p11bench does: C_SignInit,
// the size query, C_Sign.
func moduleWorker(b *testing.B, m *module.Module, key module.ObjectHandle, k keyCase) func() (func() error, func()) {
	return func() (func() error, func()) {
		h, err := m.OpenSession(0, ck.CKF_SERIAL_SESSION|ck.CKF_RW_SESSION)
		if err != nil {
			b.Fatal(err)
		}
		sig := make([]byte, 1024)
		op := func() error {
			if err := m.SignInit(h, ck.Mechanism{Type: k.mech}, key); err != nil {
				return fmt.Errorf("C_SignInit: %w", err)
			}
			n, err := m.Sign(h, k.input, nil)
			if err != nil {
				return fmt.Errorf("C_Sign size query: %w", err)
			}
			if _, err := m.Sign(h, k.input, sig[:n]); err != nil {
				return fmt.Errorf("C_Sign: %w", err)
			}
			return nil
		}
		return op, func() { _ = m.CloseSession(h) }
	}
}

// direct is the CSC client alone, as a program using cscclient would sign:
// one authorization for the run, then one signatures/signHash each.
type direct struct {
	svc *cscservice.Service
	cl  *cscclient.Client
}

func newDirect(b *testing.B, srv *server, store cscclient.SecretStore) *direct {
	b.Helper()
	svc, err := cscservice.Open(config.Service{Name: svcName, URL: srv.url, Auth: config.AuthBasic, Username: user,
		CAFile: srv.caFile, Timeout: 30 * time.Second}, slog.New(slog.DiscardHandler), cscservice.WithSecretStore(store))
	if err != nil {
		b.Fatal(err)
	}
	return &direct{svc: svc, cl: svc.Client()}
}

func (d *direct) authorize(b *testing.B, credID string, n int) string {
	b.Helper()
	res, err := d.cl.Authorize(context.Background(), &csc.AuthorizeRequest{CredentialID: credID, NumSignatures: n,
		AuthData: []csc.AuthData{{ID: "PIN", Value: pin}}})
	if err != nil {
		b.Fatalf("credentials/authorize: %v", err)
	}
	return res.SAD
}

func (d *direct) worker(credID, sad string, k keyCase) func() (func() error, func()) {
	return func() (func() error, func()) {
		req := &csc.SignHashRequest{CredentialID: credID, SAD: sad, Hashes: []csc.Bytes{k.digest}, SignAlgo: k.signAlgo}
		return func() error {
			_, err := d.cl.SignHash(context.Background(), req)
			return err
		}, func() {}
	}
}

// bare is an HTTPS POST of the signHash request's size answered with the
// signHash response's size by a handler that does nothing, on the same
// server, over a transport configured like the CSC client's.
type bare struct {
	hc             *http.Client
	url            string
	token          string
	reqLen, resLen int
}

func newBare(b *testing.B, srv *server, token string) *bare {
	b.Helper()
	pem, err := os.ReadFile(srv.caFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: cscclient.DefaultMaxIdleConnsPerHost,
		IdleConnTimeout:     90 * time.Second,
	}
	b.Cleanup(tr.CloseIdleConnections)
	return &bare{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		url: strings.TrimSuffix(srv.url, "/csc/v2") + "/bench/echo", token: token}
}

// sizeLike sets the sizes from one real signHash exchange.
func (h *bare) sizeLike(b *testing.B, d *direct, credID, sad string, k keyCase) {
	b.Helper()
	req := &csc.SignHashRequest{CredentialID: credID, SAD: sad, Hashes: []csc.Bytes{k.digest}, SignAlgo: k.signAlgo}
	body, _ := json.Marshal(req)
	res, err := d.cl.SignHash(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	sig := csc.Raw(res.Signatures)[0]
	h.reqLen = len(body)
	h.resLen = len(`{"signatures":["` + base64.StdEncoding.EncodeToString(sig) + `"]}`)
}

func (h *bare) worker() (func() error, func()) {
	body := bytes.Repeat([]byte("x"), h.reqLen)
	url := h.url + "?n=" + strconv.Itoa(h.resLen)
	return func() error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+h.token)
		res, err := h.hc.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		n, err := io.Copy(io.Discard, res.Body)
		if err != nil || n != int64(h.resLen) {
			return fmt.Errorf("echo: %d bytes, %v", n, err)
		}
		return nil
	}, func() {}
}

// BenchmarkSign: one signature through the module (C_SignInit + size query
// + C_Sign, SCAL1 credential pre-authorized at C_Login, software keystore)
// beside the CSC client alone (one authorization for the run, then
// signHash) and beside a bare HTTPS round trip of the same size, from 1, 4
// and 16 threads. Variants:
//
//	https-bare    POST of the signHash sizes to a handler doing nothing
//	direct        cscclient signHash with a SAD authorized for the run
//	module        package module in process, as the .so runs it
//	module-nocap  the same with module.Options.PreauthCap = 1<<20 (one
//	              pre-authorization covers the run), to show the cost of
//	              the default cap of 10 signatures per authorization
//	paired        direct and module alternating in every goroutine, so
//	              that both see the same load (the latency ratios that
//	              hold on a busy machine)
//	direct-proc   the direct client as a process of its own (directhost)
//	so            libcsctoken.so in a C host (p11bench), one session per
//	              thread; compared with direct-proc (both are processes
//	              other than the server's)
//
// Metrics: p50-µs and p99-µs (per signature), sig/s, cpu-µs/op (all CPU:
// server, Go clients and the C host), host-cpu-µs/op (the C host alone),
// req/op (CSC requests at the server per signature), and for the module
// variants p50/direct, p50-Δµs, p99/direct, tput/direct against the direct
// run of the same key and thread count (direct-proc for so); tput/1thread against the variant's
// own single-thread run.
func BenchmarkSign(b *testing.B) {
	srv := startServer(b, serverOptions{})
	cfgHome := b.TempDir()
	store := srv.login(b, cfgHome)
	ids := map[string]string{}
	for _, k := range keyCases() {
		ids[k.name] = srv.addCredential(b, k.kt, 1<<30)
	}
	conf := srv.moduleConfig(b, b.TempDir())
	d := newDirect(b, srv, store)
	mod, modNoCap := newModule(b, conf, store, 0), newModule(b, conf, store, 1<<20)
	soEnv := srv.hostEnv(b)
	b.Logf("load average: %s", loadavg())
	results := map[string]result{}
	for _, k := range keyCases() {
		id := ids[k.name]
		for _, c := range []int{1, 4, 16} {
			prefix := fmt.Sprintf("%s/threads=%d/", k.name, c)
			run := func(variant string, f func(b *testing.B) result) {
				b.Run(prefix+variant, func(b *testing.B) {
					r := f(b)
					results[prefix+variant] = r
					var base, one *result
					against := map[string]string{"module": "direct", "module-nocap": "direct", "so": "direct-proc"}[variant]
					if x, ok := results[prefix+against]; ok {
						base = &x
					}
					if c > 1 {
						if x, ok := results[fmt.Sprintf("%s/threads=1/%s", k.name, variant)]; ok {
							one = &x
						}
					}
					r.report(b, base, one)
				})
			}
			run("https-bare", func(b *testing.B) result {
				sad := d.authorize(b, id, 1<<20)
				tok, err := d.svc.Session().Token(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				bh := newBare(b, srv, tok.AccessToken)
				bh.sizeLike(b, d, id, sad, k)
				return runGo(b, srv, c, bh.worker)
			})
			run("direct", func(b *testing.B) result {
				sad := d.authorize(b, id, 1<<20)
				return runGo(b, srv, c, d.worker(id, sad, k))
			})
			run("module", func(b *testing.B) result {
				return runGo(b, srv, c, moduleWorker(b, mod, findKey(b, mod, id), k))
			})
			run("module-nocap", func(b *testing.B) result {
				return runGo(b, srv, c, moduleWorker(b, modNoCap, findKey(b, modNoCap, id), k))
			})
			b.Run(prefix+"paired", func(b *testing.B) {
				sad := d.authorize(b, id, 1<<20)
				dr, mr := runPaired(b, srv, c, d.worker(id, sad, k), moduleWorker(b, mod, findKey(b, mod, id), k))
				b.ReportMetric(us(dr.p50), "direct-p50-µs")
				b.ReportMetric(us(mr.p50), "module-p50-µs")
				b.ReportMetric(us(dr.p99), "direct-p99-µs")
				b.ReportMetric(us(mr.p99), "module-p99-µs")
				b.ReportMetric(float64(mr.p50)/float64(dr.p50), "p50/direct")
				b.ReportMetric(us(mr.p50-dr.p50), "p50-Δµs")
				b.ReportMetric(float64(mr.p99)/float64(dr.p99), "p99/direct")
			})
			run("direct-proc", func(b *testing.B) result {
				return runSignHost(b, srv, soEnv, nil, directHost(b), "--cred", id, "--mech", k.cmech, "--pin", pin,
					"--threads", strconv.Itoa(c), "--warmup", "3")
			})
			run("so", func(b *testing.B) result {
				lib := library(b)
				return runSignHost(b, srv, soEnv, nil, "", "--lib", lib, "--token", svcName, "--key", id,
					"--mech", k.cmech, "--pin", pin, "--threads", strconv.Itoa(c), "--warmup", "3")
			})
		}
	}
	b.Logf("load average: %s", loadavg())
}
