package bench

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore/p11"
)

// p11kitServer starts `p11-kit server` on the SoftHSM2 token of srv and
// returns the environment of a C host using p11-kit-client.so with it.
// The second result is the CPU time of the server and its children.
func p11kitServer(b *testing.B, srv *server) ([]string, func() time.Duration) {
	b.Helper()
	dir := b.TempDir()
	sock := filepath.Join(dir, "p11-kit.sock")
	cmd := exec.Command("p11-kit", "server", "--foreground", "--name", sock, "--provider", srv.hsm.ModulePath, "pkcs11:")
	cmd.Env = append(baseEnv(), srv.hsm.Env()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("p11-kit server made no socket:\n%s", out.String())
		}
	}
	pid := cmd.Process.Pid
	return append(baseEnv(), "P11_KIT_SERVER_ADDRESS=unix:path="+sock), func() time.Duration { return treeCPU(pid) }
}

// treeCPU is the user+system time of a process, its live descendants and
// its waited-for children, from /proc.
func treeCPU(pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (in parentheses, which may hold spaces).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
	var ticks int64
	for _, j := range []int{11, 12, 13, 14} {
		if j < len(f) {
			v, _ := strconv.ParseInt(f[j], 10, 64)
			ticks += v
		}
	}
	d := time.Duration(ticks) * time.Second / clockTicks
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		kids, _ := os.ReadFile(t)
		for _, k := range strings.Fields(string(kids)) {
			if c, err := strconv.Atoi(k); err == nil {
				d += treeCPU(c)
			}
		}
	}
	return d
}

// clockTicks is USER_HZ, 100 on every Linux port that matters.
const clockTicks = 100

// BenchmarkP11Kit compares the existing way to use a remote PKCS#11 token,
// p11-kit remoting (`p11-kit server --provider libsofthsm2.so` and
// p11-kit-client.so in the host, over a Unix socket), with libcsctoken.so
// → rssp (PKCS#11 backend) on the same SoftHSM2 keys: rssp generates the
// credential keys in the token (CKA_LABEL = credential ID, which is also
// the module's CKA_LABEL), then p11-kit serves the same token. Both are
// driven by p11bench (one session per thread, C_SignInit + size query +
// C_Sign; C_Login once). softhsm is the floor: p11bench with
// libsofthsm2.so loaded in process.
//
// backend is the rssp's own backend alone: the same SoftHSM2 keys signed
// through package rssp/keystore/p11 (what the rssp calls per signature:
// C_SignInit + C_Sign on a pooled session) from as many goroutines as
// sessions, in this process; its cpu-µs/op is the backend's own cost.
//
// Metrics as in BenchmarkSign (the p11kit runs' cpu-µs/op includes the
// p11-kit server process and its per-connection child); the csctoken runs
// add p50/p11kit, p99/p11kit and tput/p11kit against the p11kit run of the
// same key and session count, rssp-cpu-µs/op (the CPU of the rssp, this
// process, per signature: cpu-µs/op less the C host's) and
// rssp-over-backend-µs/op (that less the backend run's cpu-µs/op: what the
// rssp adds to its HSM's work). host-cpu-µs/op of the csctoken runs is the
// module's host CPU per C_Sign (p11bench's own share is that of the
// softhsm run's host less its HSM work, a few µs).
func BenchmarkP11Kit(b *testing.B) {
	need(b, "gcc", "p11-kit-1")
	client := p11kitClient(b)
	srv := startServer(b, serverOptions{pkcs11: true})
	lib := library(b)
	ids := map[string]string{}
	for _, k := range keyCases() {
		ids[k.name] = srv.addCredential(b, k.kt, 1<<30)
	}
	// p11-kit starts after the keys exist in the token.
	kitEnv, kitCPU := p11kitServer(b, srv)
	csctEnv := srv.hostEnv(b)
	hsmEnv := append(baseEnv(), srv.hsm.Env()...)
	be, err := p11.Open(context.Background(), p11.Config{Module: srv.hsm.ModulePath, TokenLabel: srv.hsm.Label, PIN: srv.hsm.PIN})
	if err != nil {
		b.Fatalf("p11 backend: %v", err)
	}
	b.Cleanup(func() { _ = be.Close() })
	b.Logf("load average: %s", loadavg())
	results := map[string][]result{}
	rounds := benchRounds()
	for _, k := range keyCases() {
		for _, n := range sessionCounts() {
			prefix := fmt.Sprintf("%s/sessions=%d/", k.name, n)
			common := []string{"--key", ids[k.name], "--mech", k.cmech, "--pin", pin, "--threads", strconv.Itoa(n), "--warmup", "3"}
			// The variants take turns, round after round, so that a change
			// in the machine's load falls on all of them; a repeated name
			// gets go test's "#01" suffix.
			for round := range rounds {
				last := func(variant string) (result, bool) {
					rs := results[prefix+variant]
					if len(rs) <= round {
						return result{}, false
					}
					return rs[round], true
				}
				keep := func(variant string, r result) {
					rs := results[prefix+variant]
					if len(rs) > round {
						rs[round] = r // b.Run ran the function again with a larger b.N
					} else {
						rs = append(rs, r)
					}
					results[prefix+variant] = rs
				}
				run := func(variant string, env []string, extra func() time.Duration, args ...string) {
					b.Run(prefix+variant, func(b *testing.B) {
						r := runSignHost(b, srv, env, extra, "", append(args, common...)...)
						keep(variant, r)
						r.report(b, nil, nil)
						if variant != "csctoken" {
							return
						}
						if base, ok := last("p11kit"); ok {
							b.ReportMetric(float64(r.p50)/float64(base.p50), "p50/p11kit")
							b.ReportMetric(float64(r.p99)/float64(base.p99), "p99/p11kit")
							b.ReportMetric(r.tput()/base.tput(), "tput/p11kit")
						}
						rssp := us(r.cpu-r.hostCPU) / float64(r.ops)
						b.ReportMetric(rssp, "rssp-cpu-µs/op")
						if be, ok := last("backend"); ok {
							b.ReportMetric(rssp-us(be.cpu)/float64(be.ops), "rssp-over-backend-µs/op")
						}
					})
				}
				run("softhsm", hsmEnv, nil, "--lib", srv.hsm.ModulePath, "--token", srv.hsm.Label)
				run("p11kit", kitEnv, kitCPU, "--lib", client, "--token", srv.hsm.Label)
				b.Run(prefix+"backend", func(b *testing.B) {
					r := runBackend(b, srv, be, ids[k.name], k, n)
					keep("backend", r)
					r.report(b, nil, nil)
				})
				run("csctoken", csctEnv, nil, "--lib", lib, "--token", svcName)
			}
		}
	}
	b.Logf("load average: %s", loadavg())
	// On stdout, so that `make bench` (no -v) shows it.
	fmt.Printf("\nBenchmarkP11Kit: A = csctoken (C host → libcsctoken.so → HTTPS → rssp → SoftHSM2), "+
		"B = p11-kit (C host → p11-kit-client.so → p11-kit server → SoftHSM2); medians of %d interleaved rounds; load average %s\n\n%s\n",
		rounds, loadavg(), p11kitTable(medians(results)))
}

// p11kitTable is BenchmarkP11Kit's figures as the table of issue 15: A
// (csctoken) against B (p11-kit) per key type, then the rssp's and the
// module's own CPU per signature. Missing runs show as "-".
func p11kitTable(results map[string]result) string {
	type row struct {
		name     string
		sessions int
		val      func(result) float64
		unit     string
	}
	rows := []row{
		{"p50, 1 session", 1, func(r result) float64 { return us(r.p50) }, "µs"},
		{"p99, 1 session", 1, func(r result) float64 { return us(r.p99) }, "µs"},
		{"throughput, 16 sessions", 16, func(r result) float64 { return r.tput() }, "/s"},
		{"p99, 16 sessions", 16, func(r result) float64 { return ms(r.p99) }, "ms"},
		// Not in the table: how much of A's p50 the rssp's handler
		// takes (B has no such part).
		{"of which the rssp's handler, p50, 1 session", 1, func(r result) float64 { return us(r.handledP50) }, "µs"},
		{"the rssp's handler, p99, 1 session", 1, func(r result) float64 { return us(r.handledP99) }, "µs"},
		{"the rssp's handler, p99, 16 sessions", 16, func(r result) float64 { return ms(r.handledP99) }, "ms"},
	}
	var t strings.Builder
	t.WriteString("| | RSA-2048 A | RSA-2048 B | A/B | P-256 A | P-256 B | A/B |\n|---|---|---|---|---|---|---|\n")
	for _, rw := range rows {
		t.WriteString("| " + rw.name)
		for _, k := range keyCases() {
			prefix := fmt.Sprintf("%s/sessions=%d/", k.name, rw.sessions)
			a, okA := results[prefix+"csctoken"]
			bb, okB := results[prefix+"p11kit"]
			cell := func(ok bool, r result) string {
				if !ok || rw.val(r) == 0 {
					return "-"
				}
				return fmt.Sprintf("%.0f %s", rw.val(r), rw.unit)
			}
			ratio := "-"
			if okA && okB && rw.val(bb) > 0 {
				ratio = fmt.Sprintf("%.2f×", rw.val(a)/rw.val(bb))
			}
			fmt.Fprintf(&t, " | %s | %s | %s", cell(okA, a), cell(okB, bb), ratio)
		}
		t.WriteString(" |\n")
	}
	t.WriteString("\n| CPU per signature | RSA-2048 1 session | RSA-2048 16 sessions | P-256 1 session | P-256 16 sessions |\n|---|---|---|---|---|\n")
	cpuRows := []struct {
		name string
		val  func(prefix string) (float64, bool)
	}{
		{"rssp (this process)", func(prefix string) (float64, bool) {
			r, ok := results[prefix+"csctoken"]
			return us(r.cpu-r.hostCPU) / float64(max(r.ops, 1)), ok
		}},
		{"its backend alone (rssp/keystore/p11)", func(prefix string) (float64, bool) {
			r, ok := results[prefix+"backend"]
			return us(r.cpu) / float64(max(r.ops, 1)), ok
		}},
		{"rssp over its backend", func(prefix string) (float64, bool) {
			r, ok := results[prefix+"csctoken"]
			be, okB := results[prefix+"backend"]
			return us(r.cpu-r.hostCPU)/float64(max(r.ops, 1)) - us(be.cpu)/float64(max(be.ops, 1)), ok && okB
		}},
		{"module host per C_Sign (A)", func(prefix string) (float64, bool) {
			r, ok := results[prefix+"csctoken"]
			return us(r.hostCPU) / float64(max(r.ops, 1)), ok
		}},
		{"p11-kit client host per C_Sign (B)", func(prefix string) (float64, bool) {
			r, ok := results[prefix+"p11kit"]
			return us(r.hostCPU) / float64(max(r.ops, 1)), ok
		}},
		{"whole chain A", func(prefix string) (float64, bool) {
			r, ok := results[prefix+"csctoken"]
			return us(r.cpu) / float64(max(r.ops, 1)), ok
		}},
		{"whole chain B", func(prefix string) (float64, bool) {
			r, ok := results[prefix+"p11kit"]
			return us(r.cpu) / float64(max(r.ops, 1)), ok
		}},
	}
	for _, cr := range cpuRows {
		t.WriteString("| " + cr.name)
		for _, k := range keyCases() {
			for _, n := range []int{1, 16} {
				if v, ok := cr.val(fmt.Sprintf("%s/sessions=%d/", k.name, n)); ok {
					fmt.Fprintf(&t, " | %.0f µs", v)
				} else {
					t.WriteString(" | -")
				}
			}
		}
		t.WriteString(" |\n")
	}
	return t.String()
}

// runBackend signs b.N times with the credential's key through be from n
// goroutines (after a warm-up), in this process.
func runBackend(b *testing.B, srv *server, be *p11.Backend, credID string, k keyCase, n int) result {
	b.Helper()
	c, err := srv.app.Service.Store().Credential(context.Background(), credID)
	if err != nil {
		b.Fatal(err)
	}
	return runGo(b, srv, n, func() (func() error, func()) {
		return func() error {
			_, err := be.Sign(context.Background(), c.KeyRef, k.digest, crypto.SHA256)
			return err
		}, func() {}
	})
}

// benchRounds is how many times BenchmarkP11Kit runs each variant, in
// turns: 3, or $CSCTOKEN_BENCH_ROUNDS.
func benchRounds() int {
	if v, err := strconv.Atoi(os.Getenv("CSCTOKEN_BENCH_ROUNDS")); err == nil && v > 0 {
		return v
	}
	return 3
}

// medians is, for each run name, a result whose every figure is the median
// of that figure over the rounds (each figure on its own: the p50 of one
// round may go with the throughput of another).
func medians(runs map[string][]result) map[string]result {
	out := make(map[string]result, len(runs))
	for name, rs := range runs {
		if len(rs) == 0 {
			continue
		}
		// Per-signature figures are taken as medians of their own, then
		// put back on a common count of operations.
		const ops = 1_000_000
		per := func(f func(r result) time.Duration) time.Duration {
			return medianDur(rs, func(r result) time.Duration { return f(r) * ops / time.Duration(max(r.ops, 1)) })
		}
		out[name] = result{
			ops:        ops,
			wall:       per(func(r result) time.Duration { return r.wall }),
			cpu:        per(func(r result) time.Duration { return r.cpu }),
			hostCPU:    per(func(r result) time.Duration { return r.hostCPU }),
			p50:        medianDur(rs, func(r result) time.Duration { return r.p50 }),
			p90:        medianDur(rs, func(r result) time.Duration { return r.p90 }),
			p99:        medianDur(rs, func(r result) time.Duration { return r.p99 }),
			handledP50: medianDur(rs, func(r result) time.Duration { return r.handledP50 }),
			handledP99: medianDur(rs, func(r result) time.Duration { return r.handledP99 }),
		}
	}
	return out
}

// medianDur is the median of f over rs (the mean of the middle two for an
// even count).
func medianDur(rs []result, f func(result) time.Duration) time.Duration {
	v := make([]time.Duration, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// sessionCounts are BenchmarkP11Kit's session counts; CSCTOKEN_BENCH_SESSIONS
// ("1" or "16", say) narrows a run, for profiling one case.
func sessionCounts() []int {
	if v, err := strconv.Atoi(os.Getenv("CSCTOKEN_BENCH_SESSIONS")); err == nil && v > 0 {
		return []int{v}
	}
	return []int{1, 16}
}
