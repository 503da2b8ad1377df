package secret

import (
	"context"
	"errors"
	"time"
)

// ErrBusy is returned by a Limiter when no hashing slot frees up within its
// wait: the caller answers "try again later" (503 with Retry-After).
var ErrBusy = errors.New("too many password checks at once")

// Limiter bounds how many argon2id verifications run at once. Each costs
// Params.Memory (19 MiB by default) for its duration, and passwords and
// client secrets are checked before the caller is known: without a bound,
// a few hundred concurrent wrong logins take gigabytes.
//
// Callers queue for at most the Limiter's wait, then get ErrBusy. One slot
// is reserved for authenticated callers (a PIN check behind a valid access
// token), so a flood of anonymous logins does not keep the owner of a token
// from signing. A login for an unknown user goes through the same queue
// and burns the same hash (VerifyDummy), so it costs the same time.
//
// A Limiter is safe for concurrent use; the zero value is not usable (use
// NewLimiter).
type Limiter struct {
	shared   chan struct{} // anyone
	reserved chan struct{} // authenticated callers only
	wait     time.Duration
}

// SlotsFor returns how many verifications of cost p fit in budget bytes
// (at least 2: one shared, one reserved).
func SlotsFor(budget int64, p Params) int {
	per := int64(p.Memory) << 10
	if per <= 0 {
		return 2
	}
	return max(2, int(budget/per))
}

// NewLimiter allows slots verifications at once (one of them reserved for
// authenticated callers; slots < 2 is taken as 2), each waiting at most
// wait for its turn.
func NewLimiter(slots int, wait time.Duration) *Limiter {
	slots = max(2, slots)
	return &Limiter{
		shared:   make(chan struct{}, slots-1),
		reserved: make(chan struct{}, 1),
		wait:     wait,
	}
}

// Slots is the number of verifications that may run at once.
func (l *Limiter) Slots() int { return cap(l.shared) + cap(l.reserved) }

// acquire takes a slot, waiting at most l.wait (and not past ctx); release
// gives it back.
func (l *Limiter) acquire(ctx context.Context, authenticated bool) (release func(), err error) {
	// A free shared slot first, without waiting.
	select {
	case l.shared <- struct{}{}:
		return func() { <-l.shared }, nil
	default:
	}
	var reserved chan struct{} // nil: never selected
	if authenticated {
		reserved = l.reserved
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.shared <- struct{}{}:
		return func() { <-l.shared }, nil
	case reserved <- struct{}{}:
		return func() { <-l.reserved }, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Verify is Verify of the package, in turn: ErrBusy (or ctx's error) when
// no slot frees up in time, else what Verify returns.
func (l *Limiter) Verify(ctx context.Context, pw, encoded string) error {
	return l.verify(ctx, pw, encoded, false)
}

// VerifyAuthenticated is Verify for a caller who already proved who it is
// (a PIN checked behind a valid access token): it may also take the
// reserved slot.
func (l *Limiter) VerifyAuthenticated(ctx context.Context, pw, encoded string) error {
	return l.verify(ctx, pw, encoded, true)
}

// VerifyDummy burns one Verify's time and memory, in turn, for a name that
// does not exist: nil unless busy.
func (l *Limiter) VerifyDummy(ctx context.Context, pw string) error {
	release, err := l.acquire(ctx, false)
	if err != nil {
		return err
	}
	defer release()
	VerifyDummy(pw)
	return nil
}

func (l *Limiter) verify(ctx context.Context, pw, encoded string, authenticated bool) error {
	release, err := l.acquire(ctx, authenticated)
	if err != nil {
		return err
	}
	defer release()
	return Verify(pw, encoded)
}
