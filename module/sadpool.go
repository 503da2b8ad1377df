package module

import (
	"sync"
	"time"
)

// sadPool holds a pre-authorization for one credential. mu serialises the
// authorizations of that credential (single-flight); it is held over the
// network but only by signers of that credential.
type sadPool struct {
	mu  sync.Mutex
	sad SAD
	ok  bool
	// err is a background pre-authorization's PIN failure, returned by
	// the credential's next take instead of sending the PIN once more.
	err error
}

// pool returns the SAD pool of a credential in the current login.
func (t *token) pool(credID string) *sadPool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.sads[credID]
	if !ok {
		p = &sadPool{}
		t.sads[credID] = p
	}
	return p
}

// sadSkew is how long before its announced expiry a SAD is not used.
const sadSkew = 5 * time.Second

// take returns one signature's worth of the pooled SAD, or authorizes a
// new batch with fetch(n).
func (p *sadPool) take(now time.Time, n int, fetch func(n int) (SAD, error)) (SAD, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
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
	p.mu.Lock()
	defer p.mu.Unlock()
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
	p.mu.Lock()
	p.ok = false
	p.mu.Unlock()
}
