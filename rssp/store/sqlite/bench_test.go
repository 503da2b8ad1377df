package sqlite

import (
	"context"
	"crypto/sha256"
	"math"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// The write path of a signature is one ConsumeSAD carrying its audit row.
// The benchmarks run with the default durability (synchronous=FULL: one
// fsync per commit) and with synchronous=NORMAL (no fsync per commit; a
// power cut may lose the last commits) for comparison.
//
// Besides the time per op, every benchmark reports the process CPU time per
// op (cpu-µs/op, user + system): with fsync the time per op is mostly
// waiting for the disk, and the CPU is what the store takes from the
// server's signing.
var benchModes = []string{"FULL", "NORMAL"}

func openBench(b *testing.B, sync string) *DB {
	b.Helper()
	d, err := open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), options{synchronous: sync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	return d
}

// cpuTime returns the CPU time the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per op since cpu0.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}

// benchSAD creates a user, a credential and a SAD that does not run out.
func benchSAD(b *testing.B, d *DB, now time.Time) []byte {
	b.Helper()
	ctx := context.Background()
	if err := d.CreateUser(ctx, store.User{ID: "u1", Name: "alice", PasswordHash: "h"}); err != nil {
		b.Fatal(err)
	}
	if err := d.CreateCredential(ctx, benchCredential()); err != nil {
		b.Fatal(err)
	}
	h := sha256.Sum256([]byte("bench SAD"))
	err := d.CreateSAD(ctx, store.SAD{Hash: h[:], CredentialID: "c1", UserID: "u1", Remaining: math.MaxInt32,
		ExpiresAt: now.Add(time.Hour)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return h[:]
}

// benchCredential is a credential of the size the server keeps: a key
// reference, a public key and a chain of three certificates.
func benchCredential() store.Credential {
	fill := func(n int, c byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = c
		}
		return b
	}
	return store.Credential{ID: "c1", UserID: "u1", Description: "bench key", KeyType: "ec-p256", Backend: "soft",
		KeyRef: fill(180, 1), PublicKey: fill(91, 2), CertChain: [][]byte{fill(650, 3), fill(600, 4), fill(550, 5)},
		SCAL: 1, Multisign: 1, AuthMode: "explicit", PINHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		CreatedAt: time.Now()}
}

func benchEvent() store.AuditEvent {
	return store.AuditEvent{Event: "sign", UserID: "u1", CredentialID: "c1", ClientAddr: "192.0.2.1:40000",
		Hashes: []string{"n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}, Result: "ok",
		Detail: "signAlgo 1.2.840.10045.4.3.2"}
}

// benchConcurrency is how many goroutines per GOMAXPROCS the "busy"
// variants run: a server signs for many clients at once, each request
// waiting on the store most of the time.
const benchConcurrency = 8

// requestContext is a context like an HTTP request's: one that can be
// cancelled, which costs more per statement than context.Background.
func requestContext(b *testing.B) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	return ctx
}

// runWrites runs op serially, in parallel on GOMAXPROCS goroutines, and on
// benchConcurrency times as many, for each durability mode, and reports
// how many ops each commit carried.
func runWrites(b *testing.B, setup func(b *testing.B, d *DB) func(ctx context.Context) error) {
	for _, mode := range benchModes {
		for _, variant := range []string{"serial", "parallel", "busy"} {
			b.Run("sync="+mode+"/"+variant, func(b *testing.B) {
				d := openBench(b, mode)
				op := setup(b, d)
				ctx := requestContext(b)
				batches, ops := d.batches.Load(), d.ops.Load()
				b.ResetTimer()
				cpu0 := cpuTime()
				if variant == "serial" {
					for range b.N {
						if err := op(ctx); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					if variant == "busy" {
						b.SetParallelism(benchConcurrency)
					}
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := op(ctx); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				reportCPU(b, cpu0)
				if n := d.batches.Load() - batches; n > 0 {
					b.ReportMetric(float64(d.ops.Load()-ops)/float64(n), "ops/commit")
				}
			})
		}
	}
}

func BenchmarkConsumeSAD(b *testing.B) {
	runWrites(b, func(b *testing.B, d *DB) func(ctx context.Context) error {
		now := time.Now()
		h := benchSAD(b, d, now)
		return func(ctx context.Context) error {
			return d.ConsumeSAD(ctx, h, 1, now, nil)
		}
	})
}

func BenchmarkAppendAudit(b *testing.B) {
	runWrites(b, func(b *testing.B, d *DB) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := d.AppendAudit(ctx, benchEvent())
			return err
		}
	})
}

// BenchmarkSignPath is what the server writes per signature: the SAD's
// consumption and its audit row, in one op.
func BenchmarkSignPath(b *testing.B) {
	runWrites(b, func(b *testing.B, d *DB) func(ctx context.Context) error {
		now := time.Now()
		h := benchSAD(b, d, now)
		return func(ctx context.Context) error {
			e := benchEvent()
			return d.ConsumeSAD(ctx, h, 1, now, &e)
		}
	})
}

// BenchmarkReads measures the reads of a signature (the bearer token and
// its user, the credential, the SAD) one by one and together (SignPath),
// and the two reads the server makes for them (TokenUser+SigningState), in
// parallel under a request's context, while nothing writes.
func BenchmarkReads(b *testing.B) {
	d := openBench(b, "FULL")
	now := time.Now()
	sad := benchSAD(b, d, now)
	ctx := context.Background()
	h := sha256.Sum256([]byte("token"))
	tok := store.Token{Hash: h[:], Kind: store.AccessToken, UserID: "u1", ClientID: "bench", Scope: "service",
		Family: "f1", ExpiresAt: now.Add(time.Hour), CreatedAt: now}
	if err := d.CreateToken(ctx, tok); err != nil {
		b.Fatal(err)
	}
	reads := []struct {
		name string
		read func(ctx context.Context) error
	}{
		{"Token", func(ctx context.Context) error { _, err := d.Token(ctx, h[:]); return err }},
		{"UserByID", func(ctx context.Context) error { _, err := d.UserByID(ctx, "u1"); return err }},
		{"Credential", func(ctx context.Context) error { _, err := d.Credential(ctx, "c1"); return err }},
		{"SAD", func(ctx context.Context) error { _, err := d.SAD(ctx, sad); return err }},
	}
	one := reads
	reads = append(reads, struct {
		name string
		read func(ctx context.Context) error
	}{"SignPath", func(ctx context.Context) error {
		for _, r := range one {
			if err := r.read(ctx); err != nil {
				return err
			}
		}
		return nil
	}}, struct {
		name string
		read func(ctx context.Context) error
	}{"TokenUser+SigningState", func(ctx context.Context) error {
		// What the server reads per signature now: two reads for the four.
		if _, _, err := d.TokenUser(ctx, h[:]); err != nil {
			return err
		}
		_, err := d.SigningState(ctx, "c1", sad)
		return err
	}})
	for _, r := range reads {
		b.Run(r.name, func(b *testing.B) {
			ctx := requestContext(b)
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := r.read(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportCPU(b, cpu0)
		})
	}
}
