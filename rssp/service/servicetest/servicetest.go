// Package servicetest builds a real Service for unit tests of the service
// layer (rssp/service, rssp/authserver) without HTTP: the SQLite store in a
// temporary directory, the software keystore, a throw-away CA and a clock
// that the test moves. Password and PIN hashing use cheap argon2id costs.
//
//	e := servicetest.New(t)
//	e.AddUser(t, "alice", "correct horse")
//	c, _ := e.AddCredential(t, service.CredentialSpec{User: "alice", KeyType: keystore.ECP256, PIN: "1234"})
//	e.Clock.Advance(time.Minute)
package servicetest

import (
	"context"
	"crypto"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/keystore/soft"
	"github.com/csctoken/csctoken/rssp/notify"
	"github.com/csctoken/csctoken/rssp/sealer"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/sqlite"
)

// Clock is a clock that moves only when told. It is safe for concurrent
// use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Outbox is a notifier that keeps the messages it is given: the user's
// phone for out-of-band approvals and online OTPs.
type Outbox struct {
	mu   sync.Mutex
	msgs []notify.Message
}

// Notify implements notify.Notifier.
func (o *Outbox) Notify(_ context.Context, m notify.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, m)
	return nil
}

// Last returns the last message, and false when there is none.
func (o *Outbox) Last() (notify.Message, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.msgs) == 0 {
		return notify.Message{}, false
	}
	return o.msgs[len(o.msgs)-1], true
}

// Env is a service over a fresh store, with out-of-band factors served
// (the store keeps the pending authorizations, Outbox gets the messages).
type Env struct {
	Service *service.Service
	Store   store.Store
	Clock   *Clock
	Outbox  *Outbox
	Options service.Options

	deps service.Deps // for Node
}

// Node returns another service over the same store, keys, clock and
// options: a second rssp node (process) sharing the state. What holds
// across nodes must hold between Service and the nodes.
func (e *Env) Node(t testing.TB) *service.Service {
	t.Helper()
	svc, err := service.New(e.deps, e.Options)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// Options are the limits and lifetimes New uses unless edit changes them.
func Options() service.Options {
	return service.Options{
		Name:            "servicetest",
		PublicURL:       "https://rssp.test",
		PINRetries:      3,
		AccessTokenTTL:  time.Hour,
		RefreshTokenTTL: 24 * time.Hour,
		SADTTL:          5 * time.Minute,
		MaxHashes:       10,
		MaxMultisign:    10,
		CertValidity:    365 * 24 * time.Hour,
		Argon2:          secret.Params{Time: 1, Memory: 1024, Threads: 1},
	}
}

// New builds a service; edit, if not nil, changes the options first. The
// clock starts at the current time (the CA's certificates are valid from
// then on). Everything is closed by t.Cleanup.
func New(t testing.TB, edit func(*service.Options)) *Env {
	t.Helper()
	return NewWithDeps(t, edit, nil)
}

// NewWithDeps is New where deps, if not nil, changes the service's
// dependencies before it is built (a store that fails on demand, ...);
// Env.Store stays the SQLite store underneath.
func NewWithDeps(t testing.TB, edit func(*service.Options), deps func(*service.Deps)) *Env {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "rssp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	authority, err := ca.Create(filepath.Join(dir, "ca"), "servicetest", "")
	if err != nil {
		t.Fatal(err)
	}
	kek := sealer.GenerateKEK()
	keys := soft.New(kek)
	t.Cleanup(func() { _ = keys.Close() })
	opt := Options()
	if edit != nil {
		edit(&opt)
	}
	clock := NewClock(time.Now().Truncate(time.Second))
	out := &Outbox{}
	d := service.Deps{Store: db, Keys: keys, Issuer: issuer{authority}, Sealer: kek,
		Pending: db, Notifier: out, Now: clock.Now}
	if deps != nil {
		deps(&d)
	}
	svc, err := service.New(d, opt)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Service: svc, Store: db, Clock: clock, Outbox: out, Options: opt, deps: d}
}

type issuer struct{ ca *ca.CA }

func (i issuer) Issue(user, credID string, pub crypto.PublicKey, validity time.Duration) ([]byte, error) {
	return i.ca.IssueCredential(ca.CredentialSubject{Name: user, CredentialID: credID}, pub, validity)
}

func (i issuer) Chain() [][]byte { return i.ca.Chain() }

// AddUser creates a user.
func (e *Env) AddUser(t testing.TB, name, password string) store.User {
	t.Helper()
	u, err := e.Service.AddUser(context.Background(), name, password)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// AddCredential enrols a credential and returns it with its otpauth:// URI
// (TOTP only).
func (e *Env) AddCredential(t testing.TB, spec service.CredentialSpec) (store.Credential, string) {
	t.Helper()
	c, uri, err := e.Service.AddCredential(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return c, uri
}

// Credential reads a credential back from the store.
func (e *Env) Credential(t testing.TB, id string) store.Credential {
	t.Helper()
	c, err := e.Store.Credential(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Audit returns the audit log's rows.
func (e *Env) Audit(t testing.TB) []store.AuditEvent {
	t.Helper()
	rows, err := e.Store.AuditEvents(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
