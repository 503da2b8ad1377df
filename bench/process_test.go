package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

// BenchmarkColdStart: one C host process per iteration, from dlopen to
// the first signature (C_Initialize, C_GetSlotList, C_OpenSession,
// C_Login, finding the key, C_SignInit + size query + C_Sign with
// RSA-2048), the service token stored (`csctoken login` done) and the
// listing cached by an earlier run. argon2=test is the server's PIN hash
// at the tests' cost; argon2=prod at the production default (19 MiB, 2
// passes), which C_Login's pre-authorization pays.
//
// Metrics: ms (median, dlopen → first signature, timed in the host),
// p90-ms, dlopen-ms, init-ms, login-ms, sign-ms (medians of the phases),
// process-ms (median wall time of the whole process, exec to exit),
// req/run (CSC requests per process).
func BenchmarkColdStart(b *testing.B) {
	need(b, "gcc", "p11-kit-1")
	for _, prod := range []bool{false, true} {
		name := "argon2=test"
		if prod {
			name = "argon2=prod"
		}
		b.Run(name, func(b *testing.B) {
			lib := library(b)
			srv := startServer(b, serverOptions{prodArgon2: prod})
			id := srv.addCredential(b, keystore.RSA2048, 100)
			srv.addCredential(b, keystore.ECP256, 100)
			env := srv.hostEnv(b)
			args := []string{"cold", "--lib", lib, "--token", svcName, "--key", id, "--mech", "rsa", "--pin", pin}
			runHost(b, env, args...) // caches the listing, as any earlier use would
			var total, dl, in, login, sign, proc []time.Duration
			r0 := srv.requests()
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				out := runHost(b, env, args...)
				proc = append(proc, time.Since(t0))
				f, ok := lineFields(out, "COLD")
				if !ok {
					b.Fatalf("no COLD line: %q", out)
				}
				total = append(total, time.Duration(f.int(b, "total_ns")))
				dl = append(dl, time.Duration(f.int(b, "dlopen_ns")))
				in = append(in, time.Duration(f.int(b, "init_ns")))
				login = append(login, time.Duration(f.int(b, "login_ns")))
				sign = append(sign, time.Duration(f.int(b, "sign_ns")))
			}
			b.StopTimer()
			sorted := append([]time.Duration(nil), total...)
			sortDurations(sorted)
			b.ReportMetric(ms(median(total)), "ms")
			b.ReportMetric(ms(percentile(sorted, 90)), "p90-ms")
			b.ReportMetric(ms(median(dl)), "dlopen-ms")
			b.ReportMetric(ms(median(in)), "init-ms")
			b.ReportMetric(ms(median(login)), "login-ms")
			b.ReportMetric(ms(median(sign)), "sign-ms")
			b.ReportMetric(ms(median(proc)), "process-ms")
			b.ReportMetric(float64(srv.requests()-r0)/float64(b.N), "req/run")
		})
	}
}

// BenchmarkPkcs11ToolSign: `pkcs11-tool --login --pin P --sign` of a small
// file with RSA-2048 (SHA256-RSA-PKCS) as a whole process, on SoftHSM2
// directly and through libcsctoken.so → rssp → the same SoftHSM2 key. The
// command lines differ only in --module and --token-label.
//
// Metrics: ms (median wall time of the process), p90-ms, cpu-ms (median
// user+system time of the process; the in-process server's share is not
// in it), and for csctoken x-softhsm (median ratio to the softhsm run) and
// server-cpu-ms (this process's CPU per run: rssp).
func BenchmarkPkcs11ToolSign(b *testing.B) {
	need(b, "pkcs11-tool", "gcc", "p11-kit-1")
	lib := library(b)
	srv := startServer(b, serverOptions{pkcs11: true})
	id := srv.addCredential(b, keystore.RSA2048, 100)
	srv.addCredential(b, keystore.ECP256, 100)
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, []byte("a contract to sign\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	csctEnv := srv.hostEnv(b)
	hsmEnv := append(baseEnv(), srv.hsm.Env()...)
	medians := map[string]time.Duration{}
	for _, v := range []struct {
		name, module, token string
		env                 []string
	}{
		{"softhsm", srv.hsm.ModulePath, srv.hsm.Label, hsmEnv},
		{"csctoken", lib, svcName, csctEnv},
	} {
		b.Run(v.name, func(b *testing.B) {
			args := []string{"--module", v.module, "--token-label", v.token, "--login", "--pin", pin, "--sign",
				"--label", id, "--mechanism", "SHA256-RSA-PKCS", "--input-file", data, "--output-file", filepath.Join(dir, "sig")}
			tool := func() (time.Duration, time.Duration) {
				cmd := exec.Command("pkcs11-tool", args...)
				cmd.Env = v.env
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				t0, c0 := time.Now(), childCPU()
				if err := cmd.Run(); err != nil {
					b.Fatalf("pkcs11-tool %v: %v\n%s", args, err, out.String())
				}
				return time.Since(t0), childCPU() - c0
			}
			tool() // warm-up: page cache, the module's listing cache
			var wall, cpu []time.Duration
			r0, s0 := srv.requests(), cpuTime()
			b.ResetTimer()
			for range b.N {
				w, c := tool()
				wall, cpu = append(wall, w), append(cpu, c)
			}
			b.StopTimer()
			sorted := append([]time.Duration(nil), wall...)
			sortDurations(sorted)
			medians[v.name] = median(wall)
			b.ReportMetric(ms(median(wall)), "ms")
			b.ReportMetric(ms(percentile(sorted, 90)), "p90-ms")
			b.ReportMetric(ms(median(cpu)), "cpu-ms")
			if v.name == "csctoken" {
				b.ReportMetric(ms(cpuTime()-s0)/float64(b.N), "server-cpu-ms")
				b.ReportMetric(float64(srv.requests()-r0)/float64(b.N), "req/run")
				if base := medians["softhsm"]; base > 0 {
					b.ReportMetric(float64(median(wall))/float64(base), "x-softhsm")
				}
			}
		})
	}
}

// BenchmarkCredentials1000: a service with 1,000 credentials (EC P-256),
// the module's listing cache warm.
//
//	open-find       C_Initialize + C_GetSlotList + C_OpenSession + finding
//	                every certificate, timed in the host (ms, median over
//	                the iterations, one process each; init-ms and find-ms
//	                are its parts; certs the count found; req/run the
//	                requests the process caused: none while the cached
//	                listing is younger than the module's TTL, 5 minutes)
//	open-find-settled  the same, the Go runtime started before
//	                C_Initialize (the host sleeps after dlopen): the
//	                module's own part
//	metadata-no-io  once the service is quiet (no listing running), 600
//	                calls of C_GetTokenInfo, C_GetSlotList,
//	                C_GetSessionInfo and 20 full object searches: net-req
//	                counts the CSC requests the server saw meanwhile (the
//	                goal is 0)
func BenchmarkCredentials1000(b *testing.B) {
	need(b, "gcc", "p11-kit-1")
	lib := library(b)
	srv := startServer(b, serverOptions{})
	const n = 1000
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, _, err := srv.app.Service.AddCredential(context.Background(), service.CredentialSpec{
				User: user, KeyType: keystore.ECP256, PIN: pin, Multisign: 10})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("add credential: %v", err)
	}
	b.Logf("enrolled %d credentials in %v", n, time.Since(start).Round(time.Millisecond))
	env, cache := srv.hostEnvDir(b)
	list := []string{"list", "--lib", lib, "--token", svcName}
	// The first run lists (C_Initialize waits up to 3 s for it) and stays
	// until the listing is cached.
	t0 := time.Now()
	h := startHost(b, env, append(list, "--expect", fmt.Sprint(n), "--sync")...)
	f := h.expect(b, "LIST")
	h.expect(b, "PHASE")
	if !awaitCacheWrite(cache, t0, time.Minute) {
		b.Fatal("the module wrote no listing cache")
	}
	h.send(b)
	h.expect(b, "PHASE")
	h.send(b)
	h.wait(b)
	b.Logf("first run (no cache): %s certificates, C_Initialize %.1f ms, find until all listed %.1f ms",
		f["certs"], ms(time.Duration(f.int(b, "init_ns"))), ms(time.Duration(f.int(b, "find_ns"))))
	srv.quiet(300*time.Millisecond, time.Minute)

	b.Run("open-find", func(b *testing.B) {
		var total, init, find []time.Duration
		var certs int64
		r0 := srv.requests()
		for range b.N {
			if cacheWritten(cache).IsZero() {
				b.Fatal("no listing cache")
			}
			f, ok := lineFields(runHost(b, env, list...), "LIST")
			if !ok {
				b.Fatal("no LIST line")
			}
			total = append(total, time.Duration(f.int(b, "total_ns")))
			init = append(init, time.Duration(f.int(b, "init_ns")))
			find = append(find, time.Duration(f.int(b, "find_ns")))
			certs = f.int(b, "certs")
		}
		b.StopTimer()
		srv.quiet(300*time.Millisecond, time.Minute)
		if certs < n {
			b.Errorf("%d certificates found, want at least %d", certs, n)
		}
		b.ReportMetric(ms(median(total)), "ms")
		b.ReportMetric(ms(median(init)), "init-ms")
		b.ReportMetric(ms(median(find)), "find-ms")
		b.ReportMetric(float64(certs), "certs")
		b.ReportMetric(float64(srv.requests()-r0)/float64(b.N), "req/run")
	})
	b.Run("open-find-settled", func(b *testing.B) {
		// The same once the Go runtime has started (the host sleeps after
		// dlopen): what the module itself takes.
		var total []time.Duration
		for range b.N {
			f, ok := lineFields(runHost(b, env, append(list, "--settle-ms", "150")...), "LIST")
			if !ok {
				b.Fatal("no LIST line")
			}
			total = append(total, time.Duration(f.int(b, "total_ns")))
		}
		b.ReportMetric(ms(median(total)), "ms")
	})
	b.Run("metadata-no-io", func(b *testing.B) {
		var netReq, calls int64
		for range b.N {
			h := startHost(b, env, append(list, "--sync")...)
			h.expect(b, "PHASE")
			// A listing C_Initialize may have started in the background
			// (the cache is fresh here: normally none) is over when the
			// server is quiet.
			srv.quiet(300*time.Millisecond, time.Minute)
			r0 := srv.requests()
			before := srv.countsByPath()
			h.send(b)
			f := h.expect(b, "PHASE")
			if d := srv.requests() - r0; d != 0 {
				b.Logf("requests during metadata calls: before %v after %v", before, srv.countsByPath())
				netReq += d
			}
			calls += f.int(b, "calls")
			h.send(b)
			h.wait(b)
		}
		b.ReportMetric(float64(netReq), "net-req")
		b.ReportMetric(float64(calls)/float64(b.N), "calls")
		if netReq != 0 {
			b.Errorf("%d CSC requests during metadata calls", netReq)
		}
	})
}

// BenchmarkMemory: what the module adds to a C host process, signing
// 10,000 times (EC P-256, 4 threads, one session each). Metrics (KiB, from
// /proc/self/status of the host): rss-start (before dlopen), hwm-login
// (after C_Initialize + C_Login), rss-1k/hwm-1k after 1,000 signatures,
// rss-5.5k after 5,500, rss-10k/hwm-10k after 10,000, added-hwm (hwm-10k - rss-start: peak the
// module added) and growth (rss-10k - rss-1k: must stay near 0).
func BenchmarkMemory(b *testing.B) {
	need(b, "gcc", "p11-kit-1")
	lib := library(b)
	srv := startServer(b, serverOptions{})
	id := srv.addCredential(b, keystore.ECP256, 1<<30)
	env := srv.hostEnv(b)
	for range b.N {
		out := runHost(b, env, "sign", "--lib", lib, "--token", svcName, "--key", id, "--mech", "ec", "--pin", pin,
			"--threads", "4", "--warmup", "3", "--ops", "1000,4500,4500", "--mem")
		mem := map[string]fields{}
		for _, line := range out {
			if w := strings.Fields(line); len(w) > 1 && w[0] == "MEM" {
				f := parseFields(w[1:])
				mem[f["when"]] = f
			}
		}
		for _, w := range []string{"start", "login", "phase0", "phase1", "phase2"} {
			if mem[w] == nil {
				b.Fatalf("no MEM %s line in %q", w, out)
			}
		}
		kib := func(when, k string) float64 { return float64(mem[when].int(b, k)) }
		b.ReportMetric(kib("start", "rss_kib"), "rss-start-KiB")
		b.ReportMetric(kib("login", "hwm_kib"), "hwm-login-KiB")
		b.ReportMetric(kib("phase0", "rss_kib"), "rss-1k-KiB")
		b.ReportMetric(kib("phase0", "hwm_kib"), "hwm-1k-KiB")
		b.ReportMetric(kib("phase1", "rss_kib"), "rss-5.5k-KiB")
		b.ReportMetric(kib("phase2", "rss_kib"), "rss-10k-KiB")
		b.ReportMetric(kib("phase2", "hwm_kib"), "hwm-10k-KiB")
		b.ReportMetric(kib("phase2", "hwm_kib")-kib("start", "rss_kib"), "added-hwm-KiB")
		b.ReportMetric(kib("phase2", "rss_kib")-kib("phase0", "rss_kib"), "growth-KiB")
	}
}
