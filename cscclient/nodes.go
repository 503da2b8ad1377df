package cscclient

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// ErrOutcomeUnknown: a node failed after it may have received the request
// (signHash) and the call ended in an error on another node: the first
// node may have done it (a SAD consumed, a signature audited) without the
// answer arriving.
var ErrOutcomeUnknown = errors.New("outcome unknown: a node failed after the request may have reached it")

// FailoverPolicy says how long a failed node is avoided.
type FailoverPolicy struct {
	// MinBackoff is how long a node is avoided after its first failure,
	// doubled for each failure in a row. Zero means 2s.
	MinBackoff time.Duration
	// MaxBackoff caps it. Zero means 1m.
	MaxBackoff time.Duration
}

func (p FailoverPolicy) withDefaults() FailoverPolicy {
	if p.MinBackoff <= 0 {
		p.MinBackoff = 2 * time.Second
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = time.Minute
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = p.MinBackoff
	}
	return p
}

// WithFailoverURLs adds other base URLs of the same service (other nodes,
// sharing one database and one HSM), tried in order after the base URL of
// New when it fails. Each must speak the same CSC version. The service token
// is sent to all of them.
//
// A Client with failover URLs sends each call to the first healthy node in the configured
// order. A node that fails — no connection, a reset, a TLS failure, a
// timeout, or HTTP 502, 503 or 504 — is avoided for a backoff (doubling from
// FailoverPolicy.MinBackoff to MaxBackoff while it keeps failing) and the call
// moves to the next node, within the call's context. A node whose backoff
// ran out is tried again by the next call; one answer from it, even an
// error, makes it healthy. An attempt that may move on after a timeout gets
// half of the time left to the call's context while other nodes are left,
// so a node that takes the request and never answers leaves time for the
// next. When every node is backing off, the one whose
// backoff ends first is tried.
//
// A call moves to another node only when that cannot do twice what the user
// meant once:
//   - a request that was never written (connection refused, TLS handshake
//     failed) moves for every method;
//   - idempotent methods (info, credentials/list, credentials/info,
//     authorizeCheck, signPolling, timestamp, auth/revoke) move after any
//     node failure;
//   - signatures/signHash moves even when the failed node may have received
//     it: the same SAD and the same hashes go to the next node, where the
//     server refuses a SAD already used up, so a hash is signed at most as
//     often as its SAD allows. When the next node refuses, the call's error
//     is also ErrOutcomeUnknown: the first node may have signed (and audited)
//     but its answer was lost;
//   - credentials/authorize, auth/login, extendTransaction and getChallenge
//     move only when nothing was sent: repeating them could count a wrong
//     PIN or password twice, burn a one-time password, or send a second OTP.
func WithFailoverURLs(urls ...string) Option {
	return func(c *config) { c.failover = append(c.failover, urls...) }
}

// WithFailoverPolicy sets how long a failed node is avoided.
func WithFailoverPolicy(p FailoverPolicy) Option {
	return func(c *config) { c.failoverPolicy = p }
}

// node is one base URL and its health.
type node struct {
	base *url.URL

	mu        sync.Mutex
	failures  int       // failures in a row
	downUntil time.Time // avoided until then
}

// up records an answer from the node.
func (n *node) up() {
	n.mu.Lock()
	n.failures, n.downUntil = 0, time.Time{}
	n.mu.Unlock()
}

// down records a failure at now and returns how long it is avoided.
func (n *node) down(now time.Time, p FailoverPolicy) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.failures++
	d := p.MinBackoff
	for i := 1; i < n.failures && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	n.downUntil = now.Add(d)
	return d
}

func (n *node) until() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.downUntil
}

// order returns the nodes to try: the healthy ones in configured order,
// then those backing off, the soonest back first.
func (cl *Client) order() []*node {
	if len(cl.nodes) == 1 {
		return cl.nodes
	}
	now := cl.now()
	out := make([]*node, 0, len(cl.nodes))
	var later []*node
	for _, n := range cl.nodes {
		if n.until().After(now) {
			later = append(later, n)
		} else {
			out = append(out, n)
		}
	}
	slices.SortStableFunc(later, func(a, b *node) int { return a.until().Compare(b.until()) })
	return append(out, later...)
}

// nodeFailure reports whether e says the node itself failed (rather than
// refusing the request): no response, a response cut short (a status
// line, then the connection lost: the node died mid-answer), or 502,
// 503, 504.
func nodeFailure(e *Error) bool {
	if errors.Is(e, ErrTransport) && !errors.Is(e, ErrRedirect) {
		return true
	}
	switch e.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// failoverSafe reports whether a call whose attempt failed with e may be
// sent to another node; sent says the request may have reached the node.
func failoverSafe(spec *methodSpec, sent bool) bool {
	return !sent || spec.idempotent || spec.sameSADRetry
}

// attemptCtx bounds one attempt of a call that may move to another node
// after a timeout, when other nodes are left to try: half of what remains
// of ctx, so that a node that accepts the request and never answers leaves
// time for another.
func (cl *Client) attemptCtx(ctx context.Context, othersLeft bool) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !othersLeft || !ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, time.Until(dl)/2)
}

// isNodeOrigin reports whether u is on the origin of one of the nodes.
func (cl *Client) isNodeOrigin(u *url.URL) bool {
	for _, n := range cl.nodes {
		if sameOrigin(u, n.base) {
			return true
		}
	}
	return false
}
