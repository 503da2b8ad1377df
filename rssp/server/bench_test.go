package server_test

import (
	"context"
	"crypto"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runClients runs n iterations of op spread over c goroutines and reports
// ops/s and the process CPU per operation (client and server share it).
func runClients(b *testing.B, c int, op func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, c)
	next := make(chan int, b.N)
	for i := 0; i < b.N; i++ {
		next <- i
	}
	close(next)
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sig/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkSignHash compares signatures/signHash over HTTPS (keep-alive,
// pre-authorized SCAL1 credential) with the same backend signing directly,
// for 1, 4, 16 and 64 concurrent clients, per backend and key type.
func BenchmarkSignHash(b *testing.B) {
	for _, backend := range []rssptest.Backend{rssptest.Soft, rssptest.PKCS11} {
		b.Run(string(backend), func(b *testing.B) {
			srv := rssptest.Start(b, rssptest.Options{Backend: backend, Edit: func(c *config.Config) {
				c.Security.MaxMultisign = 1 << 30
				c.Log.Level = "error"
			}})
			srv.AddUser(b, user, password)
			tok := srv.Login(b, user, password)
			for _, kt := range []keystore.KeyType{keystore.RSA2048, keystore.ECP256} {
				id, _ := srv.AddCredential(b, service.CredentialSpec{User: user, KeyType: kt, PIN: pin, Multisign: 1 << 30})
				var ar csc.AuthorizeResponse
				rssptest.Must(b, srv.Call(b, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1 << 30,
					"authData": []map[string]string{{"id": "PIN", "value": pin}}})).Decode(b, &ar)
				signAlgo := csc.OIDSHA256WithRSA
				name := "RSA2048"
				if kt == keystore.ECP256 {
					signAlgo, name = csc.OIDECDSAWithSHA256, "P256"
				}
				d := digest(crypto.SHA256, "bench")
				cred := credential(b, srv, id)
				keys := backendOf(b, srv, cred)
				for _, c := range []int{1, 4, 16, 64} {
					b.Run(fmt.Sprintf("%s/direct/clients=%d", name, c), func(b *testing.B) {
						runClients(b, c, func(int) error {
							_, err := keys.Sign(context.Background(), cred.KeyRef, d, crypto.SHA256)
							return err
						})
					})
					b.Run(fmt.Sprintf("%s/https/clients=%d", name, c), func(b *testing.B) {
						req := csc.SignHashRequest{CredentialID: id, SAD: ar.SAD, Hashes: []csc.Bytes{d}, SignAlgo: signAlgo}
						runClients(b, c, func(int) error {
							r := srv.Call(b, "signatures/signHash", tok, req)
							if r.Status != 200 {
								return fmt.Errorf("signHash: %d %s", r.Status, r.Body)
							}
							return nil
						})
					})
				}
			}
		})
	}
}

// BenchmarkAuthorizeSign measures one client's authorize (PIN, production
// argon2id cost) + signHash latency, reporting p50 and p99.
func BenchmarkAuthorizeSign(b *testing.B) {
	srv := rssptest.Start(b, rssptest.Options{Edit: func(c *config.Config) {
		c.Security.Argon2Time, c.Security.Argon2Memory = 2, 19*1024
		c.Log.Level = "error"
	}})
	srv.AddUser(b, user, password)
	tok := srv.Login(b, user, password)
	for _, kt := range []keystore.KeyType{keystore.RSA2048, keystore.ECP256} {
		id, _ := srv.AddCredential(b, service.CredentialSpec{User: user, KeyType: kt, PIN: pin})
		signAlgo := csc.OIDSHA256WithRSA
		if kt == keystore.ECP256 {
			signAlgo = csc.OIDECDSAWithSHA256
		}
		b.Run(string(kt), func(b *testing.B) {
			d := digest(crypto.SHA256, "bench")
			lat := make([]time.Duration, 0, b.N)
			for range b.N {
				t0 := time.Now()
				var ar csc.AuthorizeResponse
				rssptest.Must(b, srv.Call(b, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1,
					"authData": []map[string]string{{"id": "PIN", "value": pin}}})).Decode(b, &ar)
				rssptest.Must(b, srv.Call(b, "signatures/signHash", tok, csc.SignHashRequest{CredentialID: id, SAD: ar.SAD,
					Hashes: []csc.Bytes{d}, SignAlgo: signAlgo}))
				lat = append(lat, time.Since(t0))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

func credential(b *testing.B, srv *rssptest.Server, id string) store.Credential {
	creds, err := srv.App.Service.Credentials(context.Background(), user)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range creds {
		if c.ID == id {
			return c
		}
	}
	b.Fatalf("no credential %s", id)
	return store.Credential{}
}

func backendOf(b *testing.B, srv *rssptest.Server, c store.Credential) keystore.Backend {
	kb := srv.App.Backend(c.Backend)
	if kb == nil {
		b.Fatalf("no backend %s", c.Backend)
	}
	return kb
}
