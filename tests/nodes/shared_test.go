package nodes

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestSharedState: what one node grants or takes away holds on the other.
func TestSharedState(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cred := c.credential(t, c.a, 10, "shared EC")

	t.Run("ok token from A accepted by B, revoked on B, refused by A", func(t *testing.T) {
		tok := c.a.login(t)
		if a := c.b.call(ctx, "credentials/list", "Bearer "+tok, map[string]any{}); a.status != 200 {
			t.Fatalf("B with A's token: %v", a)
		}
		if a := c.b.call(ctx, "auth/revoke", "Bearer "+tok, map[string]any{"token": tok}); a.err != nil || a.status/100 != 2 {
			t.Fatalf("revoke on B: %v", a)
		}
		if a := c.a.call(ctx, "credentials/list", "Bearer "+tok, map[string]any{}); a.status != 401 {
			t.Fatalf("A with the token revoked on B: %v, want 401", a)
		}
	})

	t.Run("ok SAD from A used on B; used up on A, refused on B", func(t *testing.T) {
		tok := c.a.login(t)
		sad, a := c.a.authorize(ctx, tok, cred, pin, 2)
		if sad == "" {
			t.Fatalf("authorize on A: %v", a)
		}
		if a := c.b.sign(ctx, tok, cred, sad, digest()); a.status != 200 {
			t.Fatalf("B signs with A's SAD: %v", a)
		}
		if a := c.a.sign(ctx, tok, cred, sad, digest()); a.status != 200 {
			t.Fatalf("A signs the SAD's second signature: %v", a)
		}
		if a := c.b.sign(ctx, tok, cred, sad, digest()); a.status != 400 || !strings.Contains(strings.ToLower(string(a.body)), "sad") {
			t.Fatalf("B replays the used-up SAD: %v, want 400 naming the SAD", a)
		}
		if a := c.a.sign(ctx, tok, cred, sad, digest()); a.status != 400 {
			t.Fatalf("A replays the used-up SAD: %v, want 400", a)
		}
	})

	t.Run("ok 5 wrong PINs split across A and B lock the credential", func(t *testing.T) {
		lock := c.credential(t, c.b, 1, "lock EC")
		tok := c.a.login(t)
		for i := range 5 {
			n := []*node{c.a, c.b}[i%2]
			if sad, a := n.authorize(ctx, tok, lock, "000000", 1); sad != "" || a.status != 400 {
				t.Fatalf("wrong PIN %d on %s: %v", i+1, n.name, a)
			}
		}
		for _, n := range []*node{c.a, c.b} {
			sad, a := n.authorize(ctx, tok, lock, pin, 1)
			if sad != "" || !strings.Contains(strings.ToLower(string(a.body)), "locked") {
				t.Fatalf("right PIN on %s after 5 wrong ones: %v, want locked", n.name, a)
			}
		}
		out := c.a.rssp(t, "", "admin", "--config", c.a.cfg, "credential", "list", "--user", user)
		if !strings.Contains(strings.ToLower(out), "locked") {
			t.Errorf("credential list does not show the lock:\n%s", out)
		}
	})

	t.Run("ok 20 parallel wrong PINs over both nodes count exactly 5", func(t *testing.T) {
		lock := c.credential(t, c.a, 1, "race EC")
		tok := c.b.login(t)
		var mu sync.Mutex
		wrong, locked := 0, 0
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := []*node{c.a, c.b}[i%2]
				_, a := n.authorize(ctx, tok, lock, "000000", 1)
				mu.Lock()
				defer mu.Unlock()
				switch body := strings.ToLower(string(a.body)); {
				case a.status == 400 && strings.Contains(body, "locked"):
					locked++
				case a.status == 400:
					wrong++
				default:
					t.Errorf("wrong PIN on %s: %v", n.name, a)
				}
			}()
		}
		wg.Wait()
		t.Logf("20 parallel wrong PINs: %d answered wrong PIN, %d locked", wrong, locked)
		// The fifth failure may answer "locked" itself; never more than
		// five PINs are checked.
		if wrong > 5 || wrong < 4 || wrong+locked != 20 {
			t.Errorf("%d answered wrong PIN, %d locked; want 5 checked (4 or 5 wrong), the rest locked", wrong, locked)
		}
		if sad, a := c.a.authorize(ctx, tok, lock, pin, 1); sad != "" {
			t.Errorf("right PIN after the race: %v, want locked", a)
		}
	})

	// Last: it spends part of the address's budget (127.0.0.1, burst 30).
	t.Run("ok wrong passwords alternated over A and B throttle the account on both", func(t *testing.T) {
		basic := func(n *node, name, pw string) answer {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url("auth/login"), strings.NewReader("{}"))
			req.SetBasicAuth(name, pw)
			resp, err := n.client.Do(req)
			if err != nil {
				return answer{err: err}
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			return answer{status: resp.StatusCode, body: body, err: err}
		}
		// The default account burst is 10 (service.DefaultAccountRate):
		// with a throttle in each process, each node allowed 10.
		const guesser = "mallory" // unknown users are throttled alike
		for i := range 10 {
			n := []*node{c.a, c.b}[i%2]
			if a := basic(n, guesser, "guess"); a.status != 400 {
				t.Fatalf("wrong password %d on %s: %v, want 400", i+1, n.name, a)
			}
		}
		for _, n := range []*node{c.a, c.b} {
			a := basic(n, guesser, "guess")
			if a.status != 429 {
				t.Errorf("11th guess on %s: %v, want 429", n.name, a)
			}
		}
	})
}
