//go:build cgo

package p11

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/keystore/internal/lru"
	"github.com/miekg/pkcs11"
)

// idLen is the length of the random CKA_ID given to each key.
const idLen = 16

// handleCacheSize bounds the cache of private-key object handles.
const handleCacheSize = 4096

// Backend is a PKCS#11 token used as a keystore. Create it with Open.
type Backend struct {
	mod   *module
	label string
	pin   string
	wait  time.Duration
	size  int
	log   *slog.Logger
	// slot, gen (the module generation the sessions were opened in) and
	// loggedIn (counted in mod.logins) change only in reopen, with opMu
	// held for writing.
	slot     uint
	gen      uint64
	loggedIn bool

	pool    chan pkcs11.SessionHandle // idle sessions
	live    atomic.Int64              // sessions owned (idle or borrowed)
	waits   atomic.Uint64             // borrows that had to wait
	fails   atomic.Uint64             // borrows that gave up waiting
	handles *lru.Cache[string, keyObject]

	opMu      sync.RWMutex // read-held by each operation, write-held by reopen and Close
	closed    atomic.Bool
	done      chan struct{} // closed by Close; wakes pool waiters
	closeOnce sync.Once
	closeErr  error

	// The token lost and re-opened (recover.go).
	down      atomic.Bool   // the token is lost: calls fail at once
	lost      chan struct{} // closed by lose; a new one per re-open; guarded by opMu
	kick      chan struct{} // lose → supervise
	bg        sync.WaitGroup
	reopened  atomic.Uint64 // successful re-opens
	minWait   time.Duration
	maxWait   time.Duration
	downMu    sync.Mutex
	downCause error     // guarded by downMu
	downSince time.Time // guarded by downMu
	nextTry   time.Time // guarded by downMu
	witness   atomic.Pointer[[]byte]

	// Check's cached answer, guarded by holding checkSem.
	checkSem chan struct{}
	checkTTL time.Duration
	checkAt  time.Time
	checkGen uint64
	checkErr error
}

// keyObject is a private key found in the token.
type keyObject struct {
	handle  pkcs11.ObjectHandle
	keyType uint // CKK_RSA or CKK_EC
	bits    int  // RSA modulus size
}

var (
	_ keystore.Backend = (*Backend)(nil)
	_ keystore.Checker = (*Backend)(nil)
	_ keystore.Pooled  = (*Backend)(nil)
)

// findAgainFirst and findAgainLast bound Open's waits before it looks for
// a token not found again (doubling: 0.2 + 0.4 + 0.8 s).
const (
	findAgainFirst = 200 * time.Millisecond
	findAgainLast  = 800 * time.Millisecond
)

// Open loads cfg.Module, finds the token labelled cfg.TokenLabel, opens the
// session pool and logs in. A token not found is looked for again for up
// to 1.4 s (findAgainFirst), the library initialised anew each time, when
// this process uses the library for nothing else. On failure it undoes
// whatever it did.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("p11: config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mod, err := acquireModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	b, err := open(ctx, mod, cfg, logger)
	for wait := findAgainFirst; errors.Is(err, ErrTokenNotFound) && wait <= findAgainLast && mod.soleOwner(); wait *= 2 {
		// The library may list no token for a moment: SoftHSM2 reads a
		// token whose token.object another process is rewriting (it
		// truncates the file before it locks it, at every C_Login) as no
		// token at all, and an HSM may still be coming up. Look again
		// with the library initialised anew, a few times.
		logger.Warn("p11: token not found; looking again", "token", cfg.TokenLabel, "in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			_ = mod.release()
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		mod.use.Lock()
		rerr := mod.reinitLocked()
		mod.use.Unlock()
		if rerr != nil {
			err = errors.Join(err, rerr)
			break
		}
		b, err = open(ctx, mod, cfg, logger)
	}
	if err != nil {
		_ = mod.release()
		return nil, err
	}
	b.bg.Add(1)
	go b.supervise()
	return b, nil
}

// open is Open on a loaded library, held for use. On failure it closes the
// sessions it opened; the caller releases mod.
func open(ctx context.Context, mod *module, cfg Config, logger *slog.Logger) (*Backend, error) {
	mod.use.RLock()
	defer mod.use.RUnlock()
	slot, info, err := findToken(mod.ctx, cfg.TokenLabel)
	if err != nil {
		return nil, fmt.Errorf("%w (module %s)", err, cfg.Module)
	}

	size := poolSize(cfg.PoolSize, info.MaxRwSessionCount)
	b := &Backend{
		mod:      mod,
		label:    cfg.TokenLabel,
		slot:     slot,
		gen:      mod.gen.Load(),
		pin:      cfg.PIN,
		wait:     cmp.Or(cfg.PoolWait, DefaultPoolWait),
		log:      logger.With("backend", "pkcs11", "token", cfg.TokenLabel),
		pool:     make(chan pkcs11.SessionHandle, size),
		handles:  lru.New[string, keyObject](handleCacheSize),
		done:     make(chan struct{}),
		lost:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
		minWait:  cmp.Or(cfg.ReopenMinWait, DefaultReopenMinWait),
		checkSem: make(chan struct{}, 1),
		checkTTL: cmp.Or(cfg.CheckTTL, DefaultCheckTTL),
	}
	b.maxWait = max(b.minWait, cmp.Or(cfg.ReopenMaxWait, DefaultReopenMaxWait))
	var sessions []pkcs11.SessionHandle
	undo := func() {
		for _, sh := range sessions {
			_ = mod.ctx.CloseSession(sh)
		}
	}
	for range size {
		sh, err := mod.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_SESSION_COUNT)) && len(sessions) > 0 {
			b.log.Warn("token refused more sessions; using fewer", "wanted", size, "got", len(sessions))
			break
		}
		if err != nil {
			undo()
			return nil, fmt.Errorf("p11: open session on token %q: %w", cfg.TokenLabel, err)
		}
		sessions = append(sessions, sh)
	}
	if err := ctx.Err(); err != nil {
		undo()
		return nil, err
	}
	if err := mod.login(slot, sessions[0], cfg.PIN); err != nil {
		undo()
		return nil, loginError(cfg.TokenLabel, err)
	}
	b.loggedIn = true
	if w := firstKeyID(mod.ctx, sessions[0]); w != nil {
		b.witness.Store(&w)
	}
	for _, sh := range sessions {
		b.pool <- sh
	}
	b.size = len(sessions)
	b.live.Store(int64(len(sessions)))
	b.log.Info("PKCS#11 keystore open", "module", cfg.Module, "slot", slot, "sessions", b.size,
		"token_max_rw_sessions", info.MaxRwSessionCount)
	return b, nil
}

// Name returns "pkcs11".
func (b *Backend) Name() string { return "pkcs11" }

// PoolSize reports how many sessions the Backend opened.
func (b *Backend) PoolSize() int { return b.size }

// Generate creates a persistent key pair in the token: the private key is
// sensitive, non-extractable and private, usable only to sign. ref is its
// CKA_ID; label becomes CKA_LABEL.
func (b *Backend) Generate(ctx context.Context, kt keystore.KeyType, label string) ([]byte, crypto.PublicKey, error) {
	spec, ok := keySpecs[kt]
	if !ok {
		return nil, nil, fmt.Errorf("p11: %w: %q", keystore.ErrUnsupportedKey, kt)
	}
	id := make([]byte, idLen)
	rand.Read(id)

	mech, pubT, privT, err := templates(spec, id, label)
	if err != nil {
		return nil, nil, err
	}
	var pub crypto.PublicKey
	err = b.withSession(ctx, func(c ctxAPI, sh pkcs11.SessionHandle) error {
		pubH, privH, err := c.GenerateKeyPair(sh, mech, pubT, privT)
		if err != nil {
			return mapError("generate "+string(kt), err, genErrors)
		}
		pub, err = readPublic(c, sh, pubH, spec)
		if err != nil {
			// Do not leave a key nobody can name.
			_ = c.DestroyObject(sh, privH)
			_ = c.DestroyObject(sh, pubH)
			return err
		}
		b.handles.Add(string(id), keyObject{handle: privH, keyType: spec.keyType, bits: spec.bits})
		b.setWitness(id, nil)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return id, pub, nil
}

// Sign signs digest with the private key whose CKA_ID is ref.
func (b *Backend) Sign(ctx context.Context, ref []byte, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h, pss, err := keystore.CheckDigest(digest, opts)
	if err != nil {
		return nil, fmt.Errorf("p11: %w", err)
	}
	var sig []byte
	err = b.withSession(ctx, func(c ctxAPI, sh pkcs11.SessionHandle) error {
		for attempt := 0; ; attempt++ {
			k, err := b.findKey(c, sh, ref)
			if errors.Is(err, keystore.ErrKeyNotFound) {
				// A key the caller had is not there: gone alone, or
				// with the token (SoftHSM2 whose store went away still
				// answers, but finds nothing)?
				return cmpErr(b.tokenPresent(c), err)
			}
			if err != nil {
				return err
			}
			mech, data, err := signMechanism(k, h, pss, digest)
			if err != nil {
				return fmt.Errorf("p11: %w", err)
			}
			err = c.SignInit(sh, mech, k.handle)
			if attempt == 0 && isStaleHandle(err) {
				// The cached handle died (key deleted elsewhere, token
				// reset): look the key up again once.
				b.handles.Remove(string(ref))
				continue
			}
			if isStaleHandle(err) {
				return cmpErr(b.tokenPresent(c), mapError("C_SignInit", err, signErrors))
			}
			if err != nil {
				return mapError("C_SignInit", err, signErrors)
			}
			raw, err := c.Sign(sh, data)
			if err != nil {
				return mapError("C_Sign", err, signErrors)
			}
			b.setWitness(ref, nil)
			if k.keyType == pkcs11.CKK_EC {
				sig, err = ecdsaDER(raw)
				return err
			}
			sig = leftPad(raw, (k.bits+7)/8)
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	return sig, nil
}

// Delete destroys every object whose CKA_ID is ref (private and public
// key, and a certificate if one was stored with it).
func (b *Backend) Delete(ctx context.Context, ref []byte) error {
	return b.withSession(ctx, func(c ctxAPI, sh pkcs11.SessionHandle) error {
		b.handles.Remove(string(ref))
		b.setWitness(nil, ref)
		objs, err := findObjects(c, sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, ref)}, 64)
		if err != nil {
			return mapError("find objects", err, nil)
		}
		var errs []error
		for _, o := range objs {
			if err := c.DestroyObject(sh, o); err != nil && !isStaleHandle(err) {
				errs = append(errs, mapError("C_DestroyObject", err, nil))
			}
		}
		return errors.Join(errs...)
	})
}

// Close waits for operations in flight, closes the sessions, logs out and
// finalizes the library (if no other Backend uses it). Later calls to any
// method fail with keystore.ErrClosed; Close itself may be called again.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		close(b.done)
		b.bg.Wait()   // the re-opening goroutine returns
		b.opMu.Lock() // waits for operations in flight
		defer b.opMu.Unlock()
		var sessions []pkcs11.SessionHandle
		for len(b.pool) > 0 {
			sessions = append(sessions, <-b.pool)
		}
		errs := b.closeSessions(sessions)
		if err := b.mod.release(); err != nil {
			errs = append(errs, err)
		}
		b.handles.Purge()
		b.pin = ""
		b.closeErr = errors.Join(errs...)
		if b.closeErr != nil {
			b.log.Error("PKCS#11 keystore closed with errors", "error", b.closeErr)
		} else {
			b.log.Info("PKCS#11 keystore closed")
		}
	})
	return b.closeErr
}

// closeSessions logs out and closes sessions, for Close. Sessions of a
// token that went away are gone, or going: their errors are not reported.
func (b *Backend) closeSessions(sessions []pkcs11.SessionHandle) []error {
	m := b.mod
	m.use.RLock()
	defer m.use.RUnlock()
	if b.gen != m.gen.Load() || !m.initialized.Load() {
		return nil // the library was re-initialised since: they are gone
	}
	lost := b.down.Load()
	var errs []error
	if b.loggedIn {
		first := pkcs11.SessionHandle(0)
		if len(sessions) > 0 {
			first = sessions[0]
		}
		if lost {
			m.dropLogin(b.slot)
		} else if err := m.logout(b.slot, first); err != nil {
			errs = append(errs, err)
		}
	}
	for _, sh := range sessions {
		if err := m.ctx.CloseSession(sh); err != nil && !lost {
			errs = append(errs, fmt.Errorf("p11: C_CloseSession: %w", err))
		}
	}
	return errs
}

// leftPad returns b left-padded with zeros to n bytes.
func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	out := make([]byte, n)
	copy(out[n-len(b):], b)
	return out
}
