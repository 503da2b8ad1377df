package nodes

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// loadResult is what the clients of one burst saw.
type loadResult struct {
	mu       sync.Mutex
	received []string // base64 digests whose signature arrived
	fails    []string // digests given up, with why
	overuse  int      // a SAD that signed past its count
	moved    int      // signatures retried on the other node
}

func (r *loadResult) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fails) < 20 {
		r.fails = append(r.fails, fmt.Sprintf(format, args...))
	} else {
		r.fails[19] = "... and more"
	}
}

// logins logs a client in on each node in turn, one per client. It runs
// on the test's goroutine (login fails with t.Fatal, which must not run on
// another goroutine: the burst would never return).
func (c *cluster) logins(t *testing.T, clients int) []string {
	t.Helper()
	nodes := []*node{c.a, c.b}
	toks := make([]string, clients)
	for i := range clients {
		toks[i] = nodes[i%2].login(t)
	}
	return toks
}

// burst runs a client per token (logins) until ctx ends: client i signs
// with SADs of count sadCount, each signature on the next node in turn
// (A's SADs on B and back). With retry, a signature whose node fails (no
// answer, 5xx) is sent to the other node with the same SAD, and when that
// one has been used up there, with a fresh SAD from the other node.
func (c *cluster) burst(ctx context.Context, t *testing.T, cred string, toks []string, sadCount int, retry bool) *loadResult {
	r := &loadResult{}
	nodes := []*node{c.a, c.b}
	clients := len(toks)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, turn := toks[i], i
			bg := context.Background() // a request under way finishes
			for ctx.Err() == nil {
				home := nodes[turn%2]
				sad, a := home.authorize(bg, tok, cred, pin, sadCount)
				if sad == "" && retry {
					r.moveCount()
					home = nodes[(turn+1)%2]
					sad, a = home.authorize(bg, tok, cred, pin, sadCount)
				}
				if sad == "" {
					if ctx.Err() == nil {
						r.fail("authorize on %s: %v", home.name, a)
					}
					return
				}
				for k := 0; k < sadCount && ctx.Err() == nil; k++ {
					turn++
					n := nodes[turn%2]
					d := digest()
					a := n.sign(bg, tok, cred, sad, d)
					if a.status != 200 && retry && (a.err != nil || a.status >= 500) {
						r.moveCount()
						other := nodes[(turn+1)%2]
						if a = other.sign(bg, tok, cred, sad, d); a.status == 400 {
							// The failed node used the SAD up: a fresh one.
							if s2, a2 := other.authorize(bg, tok, cred, pin, 1); s2 != "" {
								a = other.sign(bg, tok, cred, s2, d)
							} else {
								a = a2
							}
							k = sadCount // the SAD's count is unknown now
						}
					}
					if a.status != 200 {
						r.fail("signHash on %s: %v", n.name, a)
						continue
					}
					r.mu.Lock()
					r.received = append(r.received, b64(d))
					r.mu.Unlock()
				}
				if ctx.Err() == nil {
					// One past the count: refused on either node.
					if a := nodes[(turn+1)%2].sign(bg, tok, cred, sad, digest()); a.status == 200 {
						r.mu.Lock()
						r.overuse++
						r.mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	return r
}

func (r *loadResult) moveCount() {
	r.mu.Lock()
	r.moved++
	r.mu.Unlock()
}

// checkAudited: the chain verifies, and every signature received has its
// audit row.
func (c *cluster) checkAudited(t *testing.T, n *node, cred string, received []string) {
	t.Helper()
	c.auditVerify(t, n)
	signed := c.signedDigests(t, cred)
	missing := 0
	for _, d := range received {
		if signed[d] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d signatures received have no audit row", missing, len(received))
	}
}

// TestBurst: 16 clients sign on both nodes at once, each SAD used on both:
// no error, no SAD over its count, one chain with a row per signature.
func TestBurst(t *testing.T) {
	c := newCluster(t)
	cred := c.credential(t, c.a, 10, "burst EC")
	toks := c.logins(t, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	start := time.Now()
	r := c.burst(ctx, t, cred, toks, 10, false)
	took := time.Since(start)
	t.Logf("16 clients over 2 nodes: %d signatures in %v (%.0f/s)", len(r.received), took.Round(time.Millisecond),
		float64(len(r.received))/took.Seconds())
	if len(r.fails) > 0 || r.overuse > 0 {
		t.Errorf("failures %q, SADs signed past their count %d", r.fails, r.overuse)
	}
	if len(r.received) < 50 {
		t.Errorf("only %d signatures", len(r.received))
	}
	c.checkAudited(t, c.b, cred, r.received)
}

// TestKill9: kill -9 node A under a burst on both: the clients move to B
// and finish every signature they started, nothing is half-written (the
// chain verifies, no SAD signs past its count, every signature received is
// audited), and A restarts and serves again.
func TestKill9(t *testing.T) {
	c := newCluster(t)
	cred := c.credential(t, c.a, 10, "kill EC")
	toks := c.logins(t, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	done := make(chan *loadResult)
	go func() { done <- c.burst(ctx, t, cred, toks, 10, true) }()
	time.Sleep(1500 * time.Millisecond)
	c.a.kill9()
	killedAt := time.Now()
	r := <-done
	t.Logf("A killed; %d signatures received, %d moved to the other node, B served %v after the kill",
		len(r.received), r.moved, time.Since(killedAt).Round(time.Millisecond))
	if len(r.fails) > 0 || r.overuse > 0 {
		t.Errorf("failures %q, SADs signed past their count %d", r.fails, r.overuse)
	}
	if r.moved == 0 {
		t.Errorf("no client had to move: the kill came too late")
	}
	c.checkAudited(t, c.b, cred, r.received)

	// A comes back and serves, on the same database.
	c.a.start(t)
	tok := c.a.login(t)
	sad, a := c.a.authorize(context.Background(), tok, cred, pin, 1)
	if sad == "" {
		t.Fatalf("authorize on the restarted A: %v", a)
	}
	if a := c.a.sign(context.Background(), tok, cred, sad, digest()); a.status != 200 {
		t.Fatalf("sign on the restarted A: %v", a)
	}
	c.auditVerify(t, c.a)
}
