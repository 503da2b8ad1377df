package sqlite

import (
	"context"
	"crypto/sha256"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// The write path of a signature is one ConsumeSAD and one AppendAudit. The
// benchmarks run with the default durability (synchronous=FULL: one fsync
// per commit) and with synchronous=NORMAL (no fsync per commit; a power cut
// may lose the last commits) for comparison.

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

// benchSAD creates a user, a credential and a SAD that does not run out.
func benchSAD(b *testing.B, d *DB, now time.Time) []byte {
	b.Helper()
	ctx := context.Background()
	if err := d.CreateUser(ctx, store.User{ID: "u1", Name: "alice", PasswordHash: "h"}); err != nil {
		b.Fatal(err)
	}
	if err := d.CreateCredential(ctx, store.Credential{ID: "c1", UserID: "u1", SCAL: 1, Multisign: 1}); err != nil {
		b.Fatal(err)
	}
	h := sha256.Sum256([]byte("bench SAD"))
	err := d.CreateSAD(ctx, store.SAD{Hash: h[:], CredentialID: "c1", UserID: "u1", Remaining: math.MaxInt32,
		ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	return h[:]
}

func benchEvent() store.AuditEvent {
	return store.AuditEvent{Event: "sign", UserID: "u1", CredentialID: "c1", ClientAddr: "192.0.2.1:40000",
		Hashes: []string{"n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}, Result: "ok"}
}

// benchConcurrency is how many goroutines per GOMAXPROCS the "busy"
// variants run: a server signs for many clients at once, each request
// waiting on the store most of the time.
const benchConcurrency = 8

// runWrites runs op serially, in parallel on GOMAXPROCS goroutines, and on
// benchConcurrency times as many, for each durability mode, and reports
// how many ops each commit carried.
func runWrites(b *testing.B, setup func(b *testing.B, d *DB) func(ctx context.Context) error) {
	for _, mode := range benchModes {
		for _, variant := range []string{"serial", "parallel", "busy"} {
			b.Run("sync="+mode+"/"+variant, func(b *testing.B) {
				d := openBench(b, mode)
				op := setup(b, d)
				ctx := context.Background()
				batches, ops := d.batches.Load(), d.ops.Load()
				if variant == "serial" {
					for b.Loop() {
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
			_, err := d.ConsumeSAD(ctx, h, 1, now)
			return err
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

// BenchmarkSignPath is what the server writes per signature: the SAD, then
// the audit row.
func BenchmarkSignPath(b *testing.B) {
	runWrites(b, func(b *testing.B, d *DB) func(ctx context.Context) error {
		now := time.Now()
		h := benchSAD(b, d, now)
		return func(ctx context.Context) error {
			if _, err := d.ConsumeSAD(ctx, h, 1, now); err != nil {
				return err
			}
			_, err := d.AppendAudit(ctx, benchEvent())
			return err
		}
	})
}

// BenchmarkToken measures a read (every request checks its bearer token)
// while nothing writes.
func BenchmarkToken(b *testing.B) {
	d := openBench(b, "FULL")
	ctx := context.Background()
	if err := d.CreateUser(ctx, store.User{ID: "u1", Name: "alice", PasswordHash: "h"}); err != nil {
		b.Fatal(err)
	}
	h := sha256.Sum256([]byte("token"))
	tok := store.Token{Hash: h[:], Kind: store.AccessToken, UserID: "u1", ExpiresAt: time.Now().Add(time.Hour)}
	if err := d.CreateToken(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.Token(ctx, h[:]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
