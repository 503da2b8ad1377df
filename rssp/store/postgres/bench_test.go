package postgres

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/pgtest"
	"github.com/csctoken/csctoken/rssp/store"
)

// BenchmarkConsumeSAD is the write path of a signature: one ConsumeSAD,
// with its audit row (the serialised chain: every append takes the audit
// lock until its commit) or without (only the SAD's row lock), by 1, 16
// and 64 clients each with a SAD of its own, so the only contention is the
// audit chain's. The test cluster runs with fsync off; the "fsync"
// variants turn it on (a commit waits for the disk: the lock is held
// through it). Besides the time per op, cpu-µs/op is the CPU time of this
// process (the node's share: pgx, not the server's).
func BenchmarkConsumeSAD(b *testing.B) {
	d, err := Open(context.Background(), Config{DSN: pgtest.Database(b), MaxConns: 64})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	ctx := context.Background()
	if err := d.CreateUser(ctx, store.User{ID: "u1", Name: "alice", PasswordHash: "h"}); err != nil {
		b.Fatal(err)
	}
	if err := d.CreateCredential(ctx, store.Credential{ID: "c1", UserID: "u1", KeyType: "ec-p256", Backend: "soft",
		SCAL: 1, Multisign: 1, AuthMode: "explicit"}); err != nil {
		b.Fatal(err)
	}
	var sads atomic.Int64
	newSAD := func() []byte {
		h := sha256.Sum256(fmt.Appendf(nil, "bench SAD %d", sads.Add(1)))
		if err := d.CreateSAD(ctx, store.SAD{Hash: h[:], CredentialID: "c1", UserID: "u1", Remaining: math.MaxInt32,
			ExpiresAt: time.Now().Add(time.Hour)}, nil); err != nil {
			b.Fatal(err)
		}
		return h[:]
	}
	for _, fsync := range []bool{false, true} {
		if _, err := d.pool.Exec(ctx, fmt.Sprintf(`ALTER SYSTEM SET fsync = %v`, fsync)); err != nil {
			b.Fatal(err)
		}
		if _, err := d.pool.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the server reloads
		for _, audit := range []bool{false, true} {
			for _, clients := range []int{1, 16, 64} {
				name := fmt.Sprintf("fsync=%v/audit=%v/clients=%d", fsync, audit, clients)
				b.Run(name, func(b *testing.B) {
					par := max(1, clients/runtime.GOMAXPROCS(0))
					b.SetParallelism(par)
					pool := make([][]byte, par*runtime.GOMAXPROCS(0))
					for i := range pool {
						pool[i] = newSAD()
					}
					var next atomic.Int64
					b.ResetTimer()
					cpu0 := cpuTime()
					b.RunParallel(func(pb *testing.PB) {
						sad := pool[int(next.Add(1)-1)%len(pool)]
						for pb.Next() {
							var e *store.AuditEvent
							if audit {
								e = &store.AuditEvent{Event: "sign", UserID: "u1", CredentialID: "c1", Result: "ok",
									Hashes: []string{"aGFzaA=="}}
							}
							if err := d.ConsumeSAD(ctx, sad, 1, time.Now(), e); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
				})
			}
		}
	}
	if _, err := d.pool.Exec(ctx, `ALTER SYSTEM RESET fsync`); err == nil {
		_, _ = d.pool.Exec(ctx, `SELECT pg_reload_conf()`)
	}
	if n, err := store.VerifyAudit(ctx, d); err != nil {
		b.Errorf("VerifyAudit after %d rows: %v", n, err)
	}
}

// cpuTime returns the CPU time the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
