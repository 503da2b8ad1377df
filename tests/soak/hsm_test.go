package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/softhsmtest"
)

// testHSMFailure: a server of its own whose keys live in a SoftHSM2 token;
// under load from 8 HTTPS clients the token's directory is moved away,
// then back. Meanwhile the server does not crash; every failed signHash is
// a prompt 503 temporarily_unavailable with Retry-After and a CSC error
// body (never a 500, a hang or a transport error) and /readyz answers 503;
// once the directory is back, /readyz returns to 200 and the same process
// signs again, without a restart (it re-initialises the PKCS#11 library:
// SoftHSM2 reads its token store only in C_Initialize; docs/security.md).
// Every signature a client received has its audit row.
func testHSMFailure(t *testing.T) {
	d := soakTime(t)
	tok := softhsmtest.New(t)
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "hsm-pin")
	if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, filepath.Join(dir, "rssp"), "--backend", "pkcs11", "--pkcs11-module", tok.ModulePath,
		"--pkcs11-token", tok.Label, "--pkcs11-pin-file", pinFile)
	bearer := s.login(t, user, password)
	ctx := context.Background()

	load := func(what string) *loadResult {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		r := httpLoad(lctx, s, bearer, 8)
		r.wait()
		t.Logf("%s: %d signatures, failures %v", what, len(r.received), r.fails)
		return r
	}
	// unavailable: a failed answer is a 503 temporarily_unavailable with
	// Retry-After and a description.
	unavailable := func(what string, a answer) {
		t.Helper()
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(a.body, &e)
		if a.err != nil || a.status != http.StatusServiceUnavailable || e.Error != "temporarily_unavailable" || e.Description == "" {
			t.Errorf("%s: %d %s %v, want 503 temporarily_unavailable with a description", what, a.status, a.body, a.err)
		}
		if n, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("%s: Retry-After %q", what, a.header.Get("Retry-After"))
		}
	}
	r := load("token present")
	if len(r.fails) > 0 || len(r.received) == 0 {
		t.Fatalf("token present: %d signatures, failures %v %v", len(r.received), r.fails, r.samples)
	}
	received := r.received
	if st := s.readyz(ctx); st != http.StatusOK {
		t.Fatalf("/readyz with the token present: %d", st)
	}

	// The fault, mid-load.
	away := tok.TokenDir + ".away"
	lctx, cancel := context.WithTimeout(ctx, 2*d)
	defer cancel()
	r = httpLoad(lctx, s, bearer, 8)
	time.Sleep(d / 2)
	if err := os.Rename(tok.TokenDir, away); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := os.Rename(away, tok.TokenDir); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	time.Sleep(d / 2)
	// One signature now, timed.
	sad, a := s.authorize(ctx, bearer, 1)
	t0 := time.Now()
	if sad != "" {
		a = s.sign(ctx, bearer, sad, digestOf(70, 0))
	}
	took := time.Since(t0)
	t.Logf("token away: signHash answered %d %s (Retry-After %q) after %v", a.status, bytes.TrimSpace(a.body),
		a.header.Get("Retry-After"), took.Round(time.Millisecond))
	unavailable("token away", a)
	if took > 2*time.Second {
		t.Errorf("token away: answered after %v, want at once", took)
	}
	ready := s.readyz(ctx)
	if ready != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the token away: %d, want 503", ready)
	}
	r.wait()
	t.Logf("token away mid-load: %d signatures, failures %v", len(r.received), r.fails)
	received = append(received, r.received...)
	for st, a := range r.samples {
		unavailable(fmt.Sprintf("token away mid-load (%d answers)", r.fails[st]), a)
	}
	if len(r.fails) == 0 {
		t.Errorf("token away mid-load: no failure: the fault did not reach the server")
	}
	select {
	case <-s.exited:
		t.Fatalf("the rssp exited with the token away:\n%s", tail(s.logs.String(), 40))
	default:
	}

	// The token returns: the same process becomes ready and signs.
	restore()
	back := time.Now()
	for s.readyz(ctx) != http.StatusOK {
		if time.Since(back) > 30*time.Second {
			t.Fatalf("/readyz not 200 30s after the token returned:\n%s", tail(s.logs.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	readyAfter := time.Since(back)
	t.Logf("token back: /readyz 200 after %v", readyAfter.Round(time.Millisecond))
	r = load("token back, same process")
	if len(r.fails) > 0 || len(r.received) == 0 {
		t.Errorf("token back, same process: %d signatures, failures %v %v\n%s", len(r.received), r.fails, r.samples, tail(s.logs.String(), 40))
	}
	received = append(received, r.received...)
	checkAudited(t, s, received)
	for _, want := range []string{"PKCS#11 token lost", "PKCS#11 token re-opened"} {
		if !strings.Contains(s.logs.String(), want) {
			t.Errorf("the server log does not say %q", want)
		}
	}
	fmt.Printf("SOAK hsm_failure away_status=%d away_retry_after=%s away_readyz=%d ready_after_ms=%d signatures_back_same_process=%d\n",
		a.status, a.header.Get("Retry-After"), ready, readyAfter.Milliseconds(), len(r.received))
}

// readyz is the status of GET /readyz (-1: no answer).
func (s *server) readyz(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.addr+"/readyz", nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}
