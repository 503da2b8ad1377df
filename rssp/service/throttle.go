package service

import (
	"context"
	"math"
	"net"
	"sync"
	"time"
)

// Throttling of password and client-secret guesses.
//
// Every failed check takes one token from two buckets: the account's (the
// user name or the OAuth2 client ID) and the caller's address (its IP; an
// IPv6 address by its /64). A check is refused without hashing (429 with
// Retry-After) while either bucket is empty; buckets refill continuously.
// Successful checks take nothing.
//
// The trade-off: an attacker who keeps guessing one account's password
// from anywhere also keeps its owner from logging in with a password while
// the guessing lasts (at most one refill interval after it stops: the
// buckets refill, nothing locks for good, and tokens already issued keep
// working). In exchange the guess rate on any account is bounded whatever
// the number of addresses, about Burst + time/Every guesses. A permanent
// lock, as for PINs, would hand any stranger a way to lock a real user out.

// Rate is a token bucket: Burst failures at once, then one per Every.
type Rate struct {
	Burst int
	Every time.Duration
}

// orDefault fills a zero Burst or Every from def.
func (r Rate) orDefault(def Rate) Rate {
	if r.Burst == 0 {
		r.Burst = def.Burst
	}
	if r.Every <= 0 {
		r.Every = def.Every
	}
	return r
}

// Default throttles: 10 wrong passwords on an account, then one every 6 s
// (600 an hour); 30 failures from one address, then one every 2 s (room for
// many users behind one NAT).
var (
	DefaultAccountRate = Rate{Burst: 10, Every: 6 * time.Second}
	DefaultAddressRate = Rate{Burst: 30, Every: 2 * time.Second}
)

// maxBuckets bounds the memory of one throttle (see shrink).
const maxBuckets = 100_000

type bucket struct {
	tokens float64
	last   time.Time
}

// throttle is a set of token buckets of one rate, by key.
type throttle struct {
	rate Rate
	mu   sync.Mutex // guards buckets
	m    map[string]*bucket
}

func newThrottle(r Rate) *throttle {
	return &throttle{rate: r, m: map[string]*bucket{}}
}

// level returns key's bucket refilled up to now (nil when it is full). The
// caller holds t.mu.
func (t *throttle) level(key string, now time.Time) *bucket {
	b := t.m[key]
	if b == nil {
		return nil
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(float64(t.rate.Burst), b.tokens+float64(el)/float64(t.rate.Every))
		b.last = now
	}
	if b.tokens >= float64(t.rate.Burst) {
		delete(t.m, key)
		return nil
	}
	return b
}

// wait says how long until key may try again (0: now).
func (t *throttle) wait(key string, now time.Time) time.Duration {
	if t == nil || key == "" {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.level(key, now)
	if b == nil || b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(t.rate.Every))
}

// fail takes one token from key's bucket and says whether this emptied it.
func (t *throttle) fail(key string, now time.Time) (emptied bool) {
	if t == nil || key == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.level(key, now)
	if b == nil {
		if len(t.m) >= maxBuckets {
			t.shrink(now)
		}
		b = &bucket{tokens: float64(t.rate.Burst), last: now}
		t.m[key] = b
	}
	before := b.tokens
	b.tokens = math.Max(0, b.tokens-1)
	return before >= 1 && b.tokens < 1
}

// shrink drops full buckets; if half the limit is still used (a spray of
// addresses or names), it forgets everything: memory stays bounded, and
// the account buckets that matter fill again within a few failures. The
// caller holds t.mu.
func (t *throttle) shrink(now time.Time) {
	for k := range t.m {
		t.level(k, now)
	}
	if len(t.m) >= maxBuckets/2 {
		clear(t.m)
	}
}

// guard throttles the guesses of one kind of secret (passwords, client
// secrets) by account and by address.
type guard struct {
	kind      string // "password" or "client secret", for the audit row
	accounts  *throttle
	addresses *throttle
}

func newGuard(kind string, account, address Rate) *guard {
	g := &guard{kind: kind}
	if account.Burst > 0 && account.Every > 0 {
		g.accounts = newThrottle(account)
	}
	if address.Burst > 0 && address.Every > 0 {
		g.addresses = newThrottle(address)
	}
	return g
}

// addressKey is the throttling key of a client address: the IP, or an IPv6
// address's /64 (one host usually has a whole /64).
func addressKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil {
		return addr
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// check refuses a guess at account from ctx's address while either bucket
// is empty: ErrThrottled with the time to wait.
func (s *Service) check(ctx context.Context, g *guard, account string) error {
	now := s.now()
	d := max(g.accounts.wait(account, now), g.addresses.wait(addressKey(clientAddr(ctx)), now))
	if d <= 0 {
		return nil
	}
	return &Problem{Kind: ErrThrottled, Description: "Too many failed attempts; try again later", RetryAfter: d}
}

// failed counts a wrong secret for account from ctx's address, and writes
// an audit row when this starts throttling either.
func (s *Service) failed(ctx context.Context, g *guard, account, userID string) {
	now := s.now()
	addr := addressKey(clientAddr(ctx))
	if g.accounts.fail(account, now) {
		s.audit(ctx, "throttle", userID, "", nil, fail(ErrThrottled, ""), g.kind+" guesses on account "+account)
	}
	if g.addresses.fail(addr, now) {
		s.audit(ctx, "throttle", userID, "", nil, fail(ErrThrottled, ""), g.kind+" guesses from address "+addr)
	}
}
