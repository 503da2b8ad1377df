package app_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user     = "alice"
	password = "correct horse"
	pin      = "123456"
)

// get answers GET path on the server's main listener (a new connection
// each time).
func get(t *testing.T, s *rssptest.Server, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.CAPool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}
	resp, err := c.Get("https://" + s.Addr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyz: /healthz and /readyz answer 200 on a working node; /readyz
// answers 503 once the database or the key backend is unavailable, while
// /healthz (the process lives) stays 200.
func TestReadyz(t *testing.T) {
	tests := []struct {
		name    string
		backend rssptest.Backend
		breakIt func(t *testing.T, s *rssptest.Server)
		reason  string // in the log
		metric  string // a failure counter that moved ("": none)
	}{
		{"fail database closed", rssptest.Soft, func(t *testing.T, s *rssptest.Server) {
			if err := s.App.StoreForTest().Close(); err != nil {
				t.Fatal(err)
			}
		}, "database: sqlite: closed", `rssp_store_errors_total{kind="other",op="Ping"}`},
		{"fail HSM keystore closed", rssptest.PKCS11, func(t *testing.T, s *rssptest.Server) {
			if err := s.App.KeysForTest().Close(); err != nil {
				t.Fatal(err)
			}
		}, "keystore pkcs11: keystore closed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := rssptest.Start(t, rssptest.Options{Backend: tt.backend, Edit: func(c *config.Config) {
				c.Metrics.Listen = "127.0.0.1:0"
			}})
			for _, p := range []string{"/healthz", "/readyz"} {
				if code, body := get(t, s, p); code != 200 || body != "ok\n" {
					t.Fatalf("GET %s on a working node = %d %q, want 200 ok", p, code, body)
				}
			}
			tt.breakIt(t, s)
			if code, body := get(t, s, "/readyz"); code != 503 || body != "not ready\n" {
				t.Errorf("GET /readyz = %d %q, want 503 not ready", code, body)
			}
			if code, _ := get(t, s, "/healthz"); code != 200 {
				t.Errorf("GET /healthz = %d, want 200", code)
			}
			if !strings.Contains(s.Logs.String(), tt.reason) {
				t.Errorf("the log does not say why the node is not ready (%q):\n%s", tt.reason, s.Logs)
			}
			if got := scrape(t, s)[tt.metric]; tt.metric != "" && got < 1 {
				t.Errorf("%s = %v after the failed check, want ≥ 1", tt.metric, got)
			}
		})
	}
}

// scrape reads the metrics listener and returns each sample by its series
// ("name{label=\"v\",...}" as exposed, labels in name order).
func scrape(t *testing.T, s *rssptest.Server) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.App.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad sample %q", line)
		}
		m[line[:i]] = v
	}
	return m
}

// TestMetrics signs, gives wrong PINs until a credential locks, and checks
// that the scraped counters moved by exactly that: requests by route and
// status, latency, signatures by key type and SCAL, factor failures and
// the lock, audit rows (as many as the audit log has), the HSM pool.
func TestMetrics(t *testing.T) {
	s := rssptest.Start(t, rssptest.Options{Backend: rssptest.PKCS11, Edit: func(c *config.Config) {
		c.Metrics.Listen = "127.0.0.1:0"
	}})
	before := scrape(t, s)
	for _, k := range []string{
		`rssp_signatures_total{key_type="ec-p256",scal="1"}`,
		`rssp_factor_failures_total{factor="pin"}`,
		`rssp_http_requests_total{code="200",route="/csc/v2/signatures/signHash"}`,
	} {
		if before[k] != 0 {
			t.Fatalf("%s = %v before any request", k, before[k])
		}
	}
	if before["rssp_credential_locks_total"] != 0 || before[`rssp_keystore_sessions{backend="pkcs11"}`] < 1 {
		t.Fatalf("before: locks %v, HSM sessions %v", before["rssp_credential_locks_total"], before[`rssp_keystore_sessions{backend="pkcs11"}`])
	}

	s.AddUser(t, user, password)
	signer, _ := s.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, Multisign: 2})
	victim, _ := s.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin})
	tok := s.Login(t, user, password)
	var ar csc.AuthorizeResponse
	rssptest.Must(t, s.Call(t, "credentials/authorize", tok, map[string]any{
		"credentialID": signer, "numSignatures": 2, "authData": []map[string]string{{"id": "PIN", "value": pin}}})).Decode(t, &ar)
	d1, d2 := sha256.Sum256([]byte("one")), sha256.Sum256([]byte("two"))
	rssptest.Must(t, s.Call(t, "signatures/signHash", tok, csc.SignHashRequest{CredentialID: signer, SAD: ar.SAD,
		Hashes: []csc.Bytes{d1[:], d2[:]}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256}))
	for i := range 5 {
		r := s.Call(t, "credentials/authorize", tok, map[string]any{
			"credentialID": victim, "numSignatures": 1, "authData": []map[string]string{{"id": "PIN", "value": fmt.Sprint("00000", i)}}})
		if r.Status != 400 {
			t.Fatalf("wrong PIN %d: %d %s", i, r.Status, r.Body)
		}
	}
	if r := s.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": victim, "numSignatures": 1,
		"authData": []map[string]string{{"id": "PIN", "value": pin}}}); r.Error().Code != "credential_locked" {
		t.Fatalf("after 5 wrong PINs: %d %s", r.Status, r.Body)
	}
	rows, err := s.App.Service.VerifyAudit(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	after := scrape(t, s)
	want := map[string]float64{
		`rssp_signatures_total{key_type="ec-p256",scal="1"}`:                            2,
		`rssp_factor_failures_total{factor="pin"}`:                                      5,
		`rssp_credential_locks_total`:                                                   1,
		`rssp_audit_appends_total`:                                                      float64(rows),
		`rssp_audit_append_errors_total`:                                                0,
		`rssp_http_requests_total{code="200",route="/csc/v2/signatures/signHash"}`:      1,
		`rssp_http_requests_total{code="200",route="/csc/v2/credentials/authorize"}`:    1,
		`rssp_http_requests_total{code="400",route="/csc/v2/credentials/authorize"}`:    6,
		`rssp_http_requests_total{code="200",route="/csc/v2/auth/login"}`:               1,
		`rssp_http_request_duration_seconds_count{route="/csc/v2/signatures/signHash"}`: 1,
		`rssp_internal_errors_total`:                                                    0,
	}
	for k, v := range want {
		if got, ok := after[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if rows < 8 {
		t.Errorf("only %d audit rows", rows)
	}
	if after[`rssp_keystore_sessions{backend="pkcs11"}`] < 1 || after[`rssp_keystore_sessions_in_use{backend="pkcs11"}`] != 0 {
		t.Errorf("HSM pool: %v sessions, %v in use", after[`rssp_keystore_sessions{backend="pkcs11"}`], after[`rssp_keystore_sessions_in_use{backend="pkcs11"}`])
	}
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}

// TestMetricsOff: without [metrics] listen there is no metrics listener,
// and the main listener does not serve /metrics.
func TestMetricsOff(t *testing.T) {
	s := rssptest.Start(t, rssptest.Options{})
	if a := s.App.MetricsAddr(); a != "" {
		t.Fatalf("metrics listener on %s by default", a)
	}
	if code, _ := get(t, s, "/metrics"); code != 404 {
		t.Errorf("GET /metrics on the main listener = %d, want 404", code)
	}
}

// TestDrain: a stopping node answers /readyz 503 at once and keeps
// serving new requests for drain_delay (keep-alive off), then stops
// accepting and still completes the request that was under way.
func TestDrain(t *testing.T) {
	const drain = 1500 * time.Millisecond
	s := rssptest.Start(t, rssptest.Options{Edit: func(c *config.Config) { c.Server.DrainDelay.Duration = drain }})
	// A request under way: headers sent, body not finished.
	conn, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: s.CAPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"rememberMe":false}`
	fmt.Fprintf(conn, "POST /csc/v2/auth/login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		s.Addr(), len(body), body[:5])
	time.Sleep(300 * time.Millisecond) // the server reads the headers and starts the handler

	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()
	deadline := time.Now().Add(drain / 2)
	for {
		code, _ := get(t, s, "/readyz")
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %v after the stop began", code, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Still serving during the drain.
	if code, _ := get(t, s, "/healthz"); code != 200 || time.Since(start) >= drain {
		t.Fatalf("GET /healthz while draining = %d (%v after the stop began)", code, time.Since(start))
	}
	if r := s.Call(t, "info", "", map[string]any{}); r.Status != 200 {
		t.Fatalf("info while draining: %d %s", r.Status, r.Body)
	}
	// After the drain delay the listener closes.
	time.Sleep(time.Until(start.Add(drain + 300*time.Millisecond)))
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting connections after the drain delay")
	}
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) before the request under way ended", err)
	default:
	}
	// The request under way completes.
	fmt.Fprint(conn, body[5:])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request under way was cut: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 && resp.StatusCode != 401 {
		t.Errorf("the request under way: %s", resp.Status)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	logs := s.Logs.String()
	for _, w := range []string{`msg="rssp draining: /readyz answers 503" drain_delay=1.5s`, `msg="rssp stopped" drained=1`} {
		if !bytes.Contains([]byte(logs), []byte(w)) {
			t.Errorf("log lacks %s:\n%s", w, logs)
		}
	}
}
