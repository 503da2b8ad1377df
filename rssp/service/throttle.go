package service

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// Throttling of password and client-secret guesses.
//
// Every failed check takes one token from two buckets: the account's (the
// user name or the OAuth2 client ID) and the caller's address (its IP; an
// IPv6 address by its /64). A check is refused without hashing (429 with
// Retry-After) while either bucket is empty; buckets refill continuously.
// Successful checks take nothing.
//
// The buckets live in the store (store.Store's ThrottleWait and
// ThrottleFail), so every node over one database shares them: N nodes do
// not give a guesser N times the budget. A bucket's key is a SHA-256 of
// what it counts (the kind of secret, account or address, and the name or
// the address), never the name itself; the audit row of a throttling keeps
// the name, as the login's own row does.
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

// guard throttles the guesses of one kind of secret (passwords, client
// secrets) by account and by address.
type guard struct {
	kind      string // "password" or "client secret", for the audit row
	accounts  *store.ThrottleRate
	addresses *store.ThrottleRate
}

// newGuard makes the guard of kind; a Rate with Burst or Every <= 0 is
// off.
func newGuard(kind string, account, address Rate) (*guard, error) {
	g := &guard{kind: kind}
	for _, r := range []struct {
		rate Rate
		dst  **store.ThrottleRate
		what string
	}{{account, &g.accounts, "account"}, {address, &g.addresses, "address"}} {
		if r.rate.Burst <= 0 || r.rate.Every <= 0 {
			continue
		}
		tr := store.ThrottleRate{Burst: r.rate.Burst, Every: r.rate.Every}
		if _, _, err := store.ThrottleSpans(tr); err != nil {
			return nil, fmt.Errorf("%s throttle of %ss (%d every %v): %w", r.what, kind, r.rate.Burst, r.rate.Every, err)
		}
		*r.dst = &tr
	}
	return g, nil
}

// throttleKey is the store's key of a bucket: what it counts, hashed.
func throttleKey(kind, what, name string) []byte {
	h := sha256.New()
	for _, f := range []string{"csctoken throttle", kind, what, name} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
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
	var d time.Duration
	for _, b := range []struct {
		rate *store.ThrottleRate
		what string
		name string
	}{{g.accounts, "account", account}, {g.addresses, "address", addressKey(clientAddr(ctx))}} {
		if b.rate == nil || b.name == "" {
			continue
		}
		w, err := s.store.ThrottleWait(ctx, throttleKey(g.kind, b.what, b.name), now, *b.rate)
		if err != nil {
			return fmt.Errorf("%s throttle: %w", g.kind, err)
		}
		d = max(d, w)
	}
	if d <= 0 {
		return nil
	}
	return &Problem{Kind: ErrThrottled, Description: "Too many failed attempts; try again later", RetryAfter: d}
}

// failed counts a wrong secret for account from ctx's address, and writes
// an audit row when this starts throttling either. A store error is
// logged: the guess has failed anyway.
func (s *Service) failed(ctx context.Context, g *guard, account, userID string) {
	now := s.now()
	for _, b := range []struct {
		rate *store.ThrottleRate
		what string
		name string
	}{{g.accounts, "account", account}, {g.addresses, "address", addressKey(clientAddr(ctx))}} {
		if b.rate == nil || b.name == "" {
			continue
		}
		emptied, err := s.store.ThrottleFail(ctx, throttleKey(g.kind, b.what, b.name), now, *b.rate)
		if err != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "counting a failed guess", slog.String("kind", g.kind), slog.Any("err", err))
			continue
		}
		if emptied {
			detail := g.kind + " guesses on account " + b.name
			if b.what == "address" {
				detail = g.kind + " guesses from address " + b.name
			}
			s.audit(ctx, "throttle", userID, "", nil, fail(ErrThrottled, ""), detail)
		}
	}
}
