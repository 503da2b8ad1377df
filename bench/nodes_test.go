package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/pgtest"
	"github.com/csctoken/csctoken/rssp/app"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/postgres"
	"github.com/csctoken/csctoken/rssp/store/sqlite"
)

// BenchmarkNodes: the rssp's signHash path on the SQLite store (one node)
// and on PostgreSQL with one and two nodes (two rssp apps in this process,
// one database, clients spread over both), at 16 and 64 HTTPS clients.
// Each client signs with one SAD of many signatures (EC P-256, software
// keystore, so the store's share is not hidden behind SoftHSM2's).
// cpu-µs/op is this process (nodes and clients) plus the PostgreSQL
// server's processes; pg-cpu-µs/op is PostgreSQL alone.
func BenchmarkNodes(b *testing.B) {
	cluster := pgtest.Start(b) // for every sub-benchmark (and each of their runs)
	for _, v := range []struct {
		name  string
		pg    bool
		nodes int
	}{{"sqlite/nodes=1", false, 1}, {"postgres/nodes=1", true, 1}, {"postgres/nodes=2", true, 2}} {
		for _, clients := range []int{16, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", v.name, clients), func(b *testing.B) {
				dsn := ""
				if v.pg {
					dsn = cluster.NewDatabase(b)
				}
				ns := startNodes(b, dsn, v.nodes)
				pgCPU := func() time.Duration { return 0 }
				pgStats := func() (int64, int64) { return 0, 0 }
				if v.pg {
					pgCPU = postmasterCPU(b, cluster)
					pgStats = dbStats(b, dsn)
				}
				x0, r0 := pgStats()
				runNodes(b, ns, clients, pgCPU)
				if x1, r1 := pgStats(); v.pg {
					// Includes the few of the set-up (logins, authorizations).
					b.ReportMetric(float64(x1-x0)/float64(b.N), "pg-xact/op")
					b.ReportMetric(float64(r1-r0)/float64(b.N), "pg-rollback/op")
				}
			})
		}
	}
}

// BenchmarkAuditAppend: the audit chain is one sequence, each row holding
// the previous one's hash, appended under one lock (SQLite: the single
// writer; PostgreSQL: an advisory lock in the row's transaction), so rows
// per second do not grow with writers: its ceiling bounds signatures per
// second across all nodes.
func BenchmarkAuditAppend(b *testing.B) {
	cluster := pgtest.Start(b)
	for _, drv := range []string{"sqlite", "postgres"} {
		for _, par := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", drv, par), func(b *testing.B) {
				ctx := context.Background()
				var st store.Store
				pgCPU := func() time.Duration { return 0 }
				switch drv {
				case "sqlite":
					db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "rssp.db"))
					if err != nil {
						b.Fatal(err)
					}
					st = db
				default:
					db, err := postgres.Open(ctx, postgres.Config{DSN: cluster.NewDatabase(b), MaxConns: int32(min(par, 32))})
					if err != nil {
						b.Fatal(err)
					}
					st = db
					pgCPU = postmasterCPU(b, cluster)
				}
				defer st.Close()
				var seq atomic.Int64
				ev := func() store.AuditEvent {
					n := seq.Add(1)
					return store.AuditEvent{Event: "sign", UserID: "u", CredentialID: "c", Result: "ok",
						Hashes: []string{strconv.FormatInt(n, 10)}}
				}
				var wg sync.WaitGroup
				per := b.N/par + 1
				cpu0, pg0 := cpuTime(), pgCPU()
				b.ResetTimer()
				start := time.Now()
				for range par {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range per {
							if _, err := st.AppendAudit(ctx, ev()); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				wall := time.Since(start)
				b.StopTimer()
				n := float64(per * par)
				b.ReportMetric(n/wall.Seconds(), "rows/s")
				b.ReportMetric(us(cpuTime()-cpu0+pgCPU()-pg0)/n, "cpu-µs/op")
			})
		}
	}
}

// benchNode is one rssp app serving on its own port.
type benchNode struct {
	app *app.App
	url string
}

// startNodes starts n rssp apps over one store: a new SQLite file (n must
// be 1) or the PostgreSQL database dsn. Production log level; the tests'
// argon2 cost.
func startNodes(b *testing.B, dsn string, n int) []*benchNode {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "rssp")
	res, err := app.Init(context.Background(), dir, app.InitOptions{Listen: "127.0.0.1:0", Name: "csctoken bench RSSP"})
	if err != nil {
		b.Fatalf("rssp init: %v", err)
	}
	cfg, err := config.Load(res.Config)
	if err != nil {
		b.Fatal(err)
	}
	if dsn != "" {
		cfg.Store = config.Store{Driver: "postgres", DSN: dsn, MaxConns: 16}
	}
	cfg.Security.Argon2Time, cfg.Security.Argon2Memory = 1, 64
	cfg.Security.MaxMultisign = 1 << 30
	cfg.Security.SADTTL.Duration = time.Hour
	var out []*benchNode
	for range n {
		log := slog.New(slog.NewTextHandler(&tail{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
		a, err := app.Open(context.Background(), cfg, log)
		if err != nil {
			b.Fatalf("rssp open: %v", err)
		}
		ln, err := a.Listen()
		if err != nil {
			a.Close()
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Serve(ctx, ln) }()
		b.Cleanup(func() {
			cancel()
			<-done
			a.Close()
		})
		out = append(out, &benchNode{app: a, url: "https://" + ln.Addr().String() + "/csc/v2/"})
	}
	if _, err := out[0].app.Service.AddUser(context.Background(), user, password); err != nil {
		b.Fatal(err)
	}
	return out
}

// postmasterCPU returns a function reading the CPU time of the cluster's
// server processes (the postmaster, its live backends and those that
// ended).
func postmasterCPU(b *testing.B, c *pgtest.Cluster) func() time.Duration {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(c.Dir, "postmaster.pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil {
		b.Fatal(err)
	}
	return func() time.Duration { return treeCPU(pid) }
}

// dbStats returns a function reading the database's committed and rolled
// back transactions (pg_stat_database; the statistics lag by up to half a
// second, so it waits that long).
func dbStats(b *testing.B, dsn string) func() (int64, int64) {
	b.Helper()
	return func() (int64, int64) {
		time.Sleep(700 * time.Millisecond)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		var x, r int64
		if err := conn.QueryRow(ctx, `SELECT pg_stat_clear_snapshot(), xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(nil, &x, &r); err != nil {
			b.Fatal(err)
		}
		return x, r
	}
}

// runNodes signs b.N hashes over clients HTTPS clients, client i on node
// i%len(ns), each with its own token and one SAD for all its signatures.
func runNodes(b *testing.B, ns []*benchNode, clients int, pgCPU func() time.Duration) {
	b.Helper()
	ctx := context.Background()
	cred, _, err := ns[0].app.Service.AddCredential(ctx, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, Multisign: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(ns[0].app.Config.Dir(), "tls-ca.pem"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 256, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	post := func(url, auth string, in, out any) error {
		body, _ := json.Marshal(in)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %d %s", url, resp.StatusCode, data)
		}
		return json.Unmarshal(data, out)
	}
	type worker struct{ node, tok, sad string }
	ws := make([]worker, clients)
	for i := range ws {
		n := ns[i%len(ns)]
		var lr csc.LoginResponse
		if err := post(n.url+"auth/login", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+password)), map[string]any{}, &lr); err != nil {
			b.Fatal(err)
		}
		var ar csc.AuthorizeResponse
		if err := post(n.url+"credentials/authorize", "Bearer "+lr.AccessToken, map[string]any{"credentialID": cred.ID,
			"numSignatures": 1 << 20, "authData": []map[string]string{{"id": "PIN", "value": pin}}}, &ar); err != nil {
			b.Fatal(err)
		}
		ws[i] = worker{n.url, lr.AccessToken, ar.SAD}
	}
	sign := func(w worker, i uint64) error {
		var d [8]byte
		binary.BigEndian.PutUint64(d[:], i)
		h := sha256.Sum256(d[:])
		var out csc.SignHashResponse
		return post(w.node+"signatures/signHash", "Bearer "+w.tok, csc.SignHashRequest{CredentialID: cred.ID, SAD: w.sad,
			Hashes: []csc.Bytes{h[:]}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256}, &out)
	}
	for _, w := range ws { // warm-up: connections, caches
		if err := sign(w, 0); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var seq atomic.Uint64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	cpu0, pg0 := cpuTime(), pgCPU()
	b.ResetTimer()
	start := time.Now()
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := sign(w, seq.Add(1)); err != nil {
					b.Error(err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	b.StopTimer()
	cpu, pg := cpuTime()-cpu0, pgCPU()-pg0
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sortDurations(all)
	n := float64(b.N)
	b.ReportMetric(n/wall.Seconds(), "sig/s")
	b.ReportMetric(us(cpu+pg)/n, "cpu-µs/op")
	b.ReportMetric(us(pg)/n, "pg-cpu-µs/op")
	b.ReportMetric(us(percentile(all, 50)), "p50-µs")
	b.ReportMetric(us(percentile(all, 99)), "p99-µs")
}
