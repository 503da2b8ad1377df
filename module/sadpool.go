package module

import (
	"context"
	"fmt"
	"time"
)

// sadPool holds a pre-authorization for one credential. mu serialises the
// authorizations of that credential (single-flight); it is held over the
// network (by a signer of that credential, or by the background
// pre-authorization of C_Login), so take waits for it as long as its
// signature's context lets it: C_SessionCancel or C_CloseSession end that
// wait. mu is a channel of one: held while it has an element.
type sadPool struct {
	mu  chan struct{}
	sad SAD
	ok  bool
	// err is a background pre-authorization's PIN failure, returned by
	// the credential's next take instead of sending the PIN once more.
	err error
}

func newSADPool() *sadPool { return &sadPool{mu: make(chan struct{}, 1)} }

func (p *sadPool) lock()   { p.mu <- struct{}{} }
func (p *sadPool) unlock() { <-p.mu }

// pool returns the SAD pool of a credential in the current login.
func (t *token) pool(credID string) *sadPool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.sads[credID]
	if !ok {
		p = newSADPool()
		t.sads[credID] = p
	}
	return p
}

// sadSkew is how long before its announced expiry a SAD is not used.
const sadSkew = 5 * time.Second

// take returns one signature's worth of the pooled SAD, or authorizes a
// new batch with fetch(n). It waits for another authorization of the
// credential under way until ctx ends (then ctx's error).
func (p *sadPool) take(ctx context.Context, now time.Time, n int, fetch func(n int) (SAD, error)) (SAD, error) {
	select {
	case p.mu <- struct{}{}:
	case <-ctx.Done():
		return SAD{}, fmt.Errorf("waiting for the authorization under way: %w", context.Cause(ctx))
	}
	defer p.unlock()
	if err := p.err; err != nil {
		p.err = nil
		return SAD{}, err
	}
	if p.ok && p.sad.Remaining > 0 && (p.sad.ExpiresAt.IsZero() || now.Add(sadSkew).Before(p.sad.ExpiresAt)) {
		p.sad.Remaining--
		s := p.sad
		s.Remaining = 1
		return s, nil
	}
	p.ok = false
	sad, err := fetch(n)
	if err != nil {
		return SAD{}, err
	}
	if sad.Remaining <= 0 || sad.Remaining > n {
		sad.Remaining = n
	}
	p.sad, p.ok = sad, true
	p.sad.Remaining--
	s := sad
	s.Remaining = 1
	return s, nil
}

// put stores a fresh pre-authorization (from C_Login).
func (p *sadPool) put(sad SAD, n int) {
	p.lock()
	defer p.unlock()
	p.set(sad, n)
}

// set stores a pre-authorization of n signatures; the caller holds p.mu.
func (p *sadPool) set(sad SAD, n int) {
	if sad.Remaining <= 0 || sad.Remaining > n {
		sad.Remaining = n
	}
	p.sad, p.ok, p.err = sad, true, nil
}

func (p *sadPool) drop() {
	p.lock()
	p.ok = false
	p.unlock()
}
