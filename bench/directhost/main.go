// Command directhost is the direct CSC client as a process of its own, for
// the benchmarks in bench/: it signs with cscclient alone (one
// credentials/authorize for the run, then one signatures/signHash per
// signature) and speaks p11bench's line protocol, so that the built
// libcsctoken.so in a C host is compared with a client in the same
// position (another process than the server). It never loads the library.
//
//	directhost --cred ID --mech rsa|ec --pin PIN [--threads N] [--warmup W] [--ops N] [--sync]
//
// The service is the first [[service]] of the module config found as the
// module finds it ($CSCTOKEN_CONFIG, ...), with its stored service token.
// Output: READY (with --sync, then a line on stdin starts the run) and
// RESULT phase=0 ops= threads= wall_ns= cpu_ns= p50_ns= p90_ns= p99_ns= max_ns=.
//go:build unix

package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
)

func main() {
	cred := flag.String("cred", "", "credential ID")
	mech := flag.String("mech", "rsa", "rsa (sha256WithRSAEncryption) or ec (ecdsa-with-SHA256)")
	pin := flag.String("pin", "", "credential PIN")
	threads := flag.Int("threads", 1, "goroutines, one signature at a time each")
	warmup := flag.Int("warmup", 3, "signatures per goroutine before the run")
	ops := flag.Int("ops", 1000, "signatures in the run")
	syncStart := flag.Bool("sync", false, "print READY and wait for a line on stdin")
	flag.Parse()
	if err := run(*cred, *mech, *pin, *threads, *warmup, *ops, *syncStart); err != nil {
		fmt.Fprintln(os.Stderr, "directhost:", err)
		os.Exit(1)
	}
}

func run(cred, mech, pin string, threads, warmup, ops int, syncStart bool) error {
	if threads < 1 || ops < 1 {
		return fmt.Errorf("--threads and --ops must be positive")
	}
	cfg, err := config.LoadDefault()
	if err != nil {
		return err
	}
	if len(cfg.Services) == 0 {
		return fmt.Errorf("no [[service]] in the config")
	}
	svc, err := cscservice.Open(cfg.Services[0], nil)
	if err != nil {
		return err
	}
	cl := svc.Client()
	ctx := context.Background()
	// p11bench's input: 32 bytes, hashed for RSA (CKM_SHA256_RSA_PKCS),
	// taken as the hash for ECDSA (CKM_ECDSA).
	msg := make([]byte, 32)
	for i := range msg {
		msg[i] = byte(i*7 + 1)
	}
	digest, algo := msg, csc.OIDECDSAWithSHA256
	if mech == "rsa" {
		sum := sha256.Sum256(msg)
		digest, algo = sum[:], csc.OIDSHA256WithRSA
	}
	ar, err := cl.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: cred, NumSignatures: ops + threads*warmup,
		AuthData: []csc.AuthData{{ID: "PIN", Value: pin}}})
	if err != nil {
		return err
	}
	req := &csc.SignHashRequest{CredentialID: cred, SAD: ar.SAD, Hashes: []csc.Bytes{digest}, SignAlgo: algo}
	sign := func() error {
		_, err := cl.SignHash(ctx, req)
		return err
	}

	lat := make([]time.Duration, ops)
	var next atomic.Int64
	var warm, done sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, threads)
	for range threads {
		warm.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			for range warmup {
				if err := sign(); err != nil {
					errs <- err
					warm.Done()
					return
				}
			}
			warm.Done()
			<-start
			for {
				n := int(next.Add(1) - 1)
				if n >= ops {
					return
				}
				t := time.Now()
				if err := sign(); err != nil {
					errs <- err
					return
				}
				lat[n] = time.Since(t)
			}
		}()
	}
	warm.Wait()
	if syncStart {
		fmt.Println("READY")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return fmt.Errorf("stdin: %w", err)
		}
	}
	c0, t0 := cpuTime(), time.Now()
	close(start)
	done.Wait()
	wall, cpu := time.Since(t0), cpuTime()-c0
	select {
	case err := <-errs:
		return err
	default:
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p int) int64 { return lat[min(ops*p/100, ops-1)].Nanoseconds() }
	fmt.Printf("RESULT phase=0 ops=%d threads=%d wall_ns=%d cpu_ns=%d p50_ns=%d p90_ns=%d p99_ns=%d max_ns=%d\n",
		ops, threads, wall.Nanoseconds(), cpu.Nanoseconds(), pct(50), pct(90), pct(99), lat[ops-1].Nanoseconds())
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
