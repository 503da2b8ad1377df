//go:build cgo

package p11

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"runtime"
	"strings"
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
	mod  *module
	slot uint
	pin  string
	wait time.Duration
	size int
	log  *slog.Logger

	pool    chan pkcs11.SessionHandle // idle sessions
	live    atomic.Int64              // sessions owned (idle or borrowed)
	handles *lru.Cache[string, keyObject]

	opMu      sync.RWMutex // read-held by each operation, write-held by Close
	closed    atomic.Bool
	done      chan struct{} // closed by Close; wakes pool waiters
	closeOnce sync.Once
	closeErr  error
}

// keyObject is a private key found in the token.
type keyObject struct {
	handle  pkcs11.ObjectHandle
	keyType uint // CKK_RSA or CKK_EC
	bits    int  // RSA modulus size
}

var _ keystore.Backend = (*Backend)(nil)

// Open loads cfg.Module, finds the token labelled cfg.TokenLabel, opens the
// session pool and logs in. On failure it undoes whatever it did.
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
	slot, info, err := findToken(mod.ctx, cfg.TokenLabel)
	if err != nil {
		_ = mod.release()
		return nil, fmt.Errorf("%w (module %s)", err, cfg.Module)
	}

	size := poolSize(cfg.PoolSize, info.MaxRwSessionCount)
	b := &Backend{
		mod:     mod,
		slot:    slot,
		pin:     cfg.PIN,
		wait:    cmp.Or(cfg.PoolWait, DefaultPoolWait),
		log:     logger.With("backend", "pkcs11", "token", cfg.TokenLabel),
		pool:    make(chan pkcs11.SessionHandle, size),
		handles: lru.New[string, keyObject](handleCacheSize),
		done:    make(chan struct{}),
	}
	var sessions []pkcs11.SessionHandle
	undo := func() {
		for _, sh := range sessions {
			_ = mod.ctx.CloseSession(sh)
		}
		_ = mod.release()
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
			if err != nil {
				return mapError("C_SignInit", err, signErrors)
			}
			raw, err := c.Sign(sh, data)
			if err != nil {
				return mapError("C_Sign", err, signErrors)
			}
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
		b.opMu.Lock() // waits for operations in flight
		defer b.opMu.Unlock()
		var sessions []pkcs11.SessionHandle
		for len(b.pool) > 0 {
			sessions = append(sessions, <-b.pool)
		}
		var errs []error
		first := pkcs11.SessionHandle(0)
		if len(sessions) > 0 {
			first = sessions[0]
		}
		if err := b.mod.logout(b.slot, first); err != nil {
			errs = append(errs, err)
		}
		for _, sh := range sessions {
			if err := b.mod.ctx.CloseSession(sh); err != nil {
				errs = append(errs, fmt.Errorf("p11: C_CloseSession: %w", err))
			}
		}
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

// withSession runs f on a borrowed session. It waits for one at most
// b.wait, and no longer than ctx allows. If the token forgot the login, it
// logs in again and retries f once.
func (b *Backend) withSession(ctx context.Context, f func(ctxAPI, pkcs11.SessionHandle) error) error {
	b.opMu.RLock()
	defer b.opMu.RUnlock()
	if b.closed.Load() {
		return keystore.ErrClosed
	}
	sh, err := b.borrow(ctx)
	if err != nil {
		return err
	}
	err = f(b.mod.ctx, sh)
	if errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)) {
		if lerr := b.mod.ctx.Login(sh, pkcs11.CKU_USER, b.pin); lerr == nil || errors.Is(lerr, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
			b.log.Warn("token had logged out; logged in again")
			err = f(b.mod.ctx, sh)
		}
	}
	b.giveBack(sh, err)
	return err
}

// borrow takes an idle session.
func (b *Backend) borrow(ctx context.Context) (pkcs11.SessionHandle, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("p11: %w", err)
	}
	select {
	case sh := <-b.pool:
		return sh, nil
	default:
	}
	timer := time.NewTimer(b.wait)
	defer timer.Stop()
	select {
	case sh := <-b.pool:
		return sh, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("p11: waiting for a session: %w", context.Cause(ctx))
	case <-timer.C:
		return 0, fmt.Errorf("%w after %v (%d sessions, all busy)", ErrPoolExhausted, b.wait, b.live.Load())
	case <-b.done:
		return 0, keystore.ErrClosed
	}
}

// giveBack returns sh to the pool, replacing it first if opErr says the
// session is gone.
func (b *Backend) giveBack(sh pkcs11.SessionHandle, opErr error) {
	if !isDeadSession(opErr) {
		b.pool <- sh
		return
	}
	_ = b.mod.ctx.CloseSession(sh)
	nsh, err := b.mod.ctx.OpenSession(b.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		n := b.live.Add(-1)
		b.log.Error("PKCS#11 session lost and could not be reopened; pool shrinks", "error", opErr, "reopen_error", err, "sessions", n)
		return
	}
	b.log.Warn("PKCS#11 session lost; reopened", "error", opErr)
	b.pool <- nsh
}

// findKey returns the private key with CKA_ID ref, from the cache or the
// token.
func (b *Backend) findKey(c ctxAPI, sh pkcs11.SessionHandle, ref []byte) (keyObject, error) {
	if k, ok := b.handles.Get(string(ref)); ok {
		return k, nil
	}
	objs, err := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, ref),
	}, 2)
	if err != nil {
		return keyObject{}, mapError("find key", err, nil)
	}
	switch len(objs) {
	case 0:
		return keyObject{}, fmt.Errorf("p11: %w: no private key with CKA_ID %x", keystore.ErrKeyNotFound, ref)
	case 1:
	default:
		return keyObject{}, fmt.Errorf("p11: several private keys with CKA_ID %x", ref)
	}
	attrs, err := c.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return keyObject{}, mapError("read CKA_KEY_TYPE", err, nil)
	}
	kt, err := ulong(attrs[0].Value)
	if err != nil {
		return keyObject{}, err
	}
	k := keyObject{handle: objs[0], keyType: kt}
	if kt == pkcs11.CKK_RSA {
		attrs, err := c.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil)})
		if err != nil {
			return keyObject{}, mapError("read CKA_MODULUS", err, nil)
		}
		k.bits = new(big.Int).SetBytes(attrs[0].Value).BitLen()
	}
	b.handles.Add(string(ref), k)
	return k, nil
}

// findObjects returns up to n objects matching temp (callers ask for one
// more than they expect, to detect ambiguity).
func findObjects(c ctxAPI, sh pkcs11.SessionHandle, temp []*pkcs11.Attribute, n int) ([]pkcs11.ObjectHandle, error) {
	if err := c.FindObjectsInit(sh, temp); err != nil {
		return nil, err
	}
	objs, _, err := c.FindObjects(sh, n)
	ferr := c.FindObjectsFinal(sh) // always, even after an error
	if err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	return objs, nil
}

// findToken returns the slot of the one initialised token labelled label.
func findToken(c ctxAPI, label string) (uint, pkcs11.TokenInfo, error) {
	slots, err := c.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("p11: C_GetSlotList: %w", err)
	}
	var (
		found   []uint
		info    pkcs11.TokenInfo
		present []string
	)
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			continue // a slot that cannot describe its token is not ours
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		l := strings.TrimRight(ti.Label, " \x00")
		present = append(present, fmt.Sprintf("%q", l))
		if l == label {
			found = append(found, s)
			info = ti
		}
	}
	switch len(found) {
	case 1:
		return found[0], info, nil
	case 0:
		return 0, info, fmt.Errorf("%w: no initialised token labelled %q (tokens present: %s)",
			ErrTokenNotFound, label, cmp.Or(strings.Join(present, ", "), "none"))
	default:
		return 0, info, fmt.Errorf("p11: %d tokens are labelled %q (slots %v); labels must be unique", len(found), label, found)
	}
}

// poolSize applies Config.PoolSize's rules.
func poolSize(configured int, tokenMax uint) int {
	n := configured
	if n == 0 {
		n = max(4, 2*runtime.NumCPU())
	}
	n = max(n, runtime.NumCPU())
	if tokenMax != pkcs11.CK_EFFECTIVELY_INFINITE && tokenMax != pkcs11.CK_UNAVAILABLE_INFORMATION && uint(n) > tokenMax {
		n = int(tokenMax)
	}
	return n
}

// templates builds the C_GenerateKeyPair arguments for spec.
func templates(spec keySpec, id []byte, label string) ([]*pkcs11.Mechanism, []*pkcs11.Attribute, []*pkcs11.Attribute, error) {
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, spec.keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, spec.keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	var mech uint
	switch spec.keyType {
	case pkcs11.CKK_RSA:
		mech = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN
		pub = append(pub,
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, spec.bits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
	case pkcs11.CKK_EC:
		mech = pkcs11.CKM_EC_KEY_PAIR_GEN
		params, err := asn1.Marshal(spec.oid)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("p11: encode curve: %w", err)
		}
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params))
	}
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pub, priv, nil
}

// readPublic reads a generated public key back from the token.
func readPublic(c ctxAPI, sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, spec keySpec) (crypto.PublicKey, error) {
	if spec.keyType == pkcs11.CKK_RSA {
		attrs, err := c.GetAttributeValue(sh, o, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, mapError("read RSA public key", err, nil)
		}
		pub, err := rsaPublic(attrs[0].Value, attrs[1].Value)
		if err != nil {
			return nil, err
		}
		if pub.N.BitLen() != spec.bits {
			return nil, fmt.Errorf("p11: token generated a %d-bit modulus, want %d", pub.N.BitLen(), spec.bits)
		}
		return pub, nil
	}
	attrs, err := c.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, mapError("read CKA_EC_POINT", err, nil)
	}
	return parseECPoint(spec.curve, attrs[0].Value)
}

// Return values that map to keystore errors, per operation.
var (
	signErrors = map[pkcs11.Error]error{
		pkcs11.CKR_DATA_LEN_RANGE:             keystore.ErrInvalidDigest,
		pkcs11.CKR_DATA_INVALID:               keystore.ErrInvalidDigest,
		pkcs11.CKR_MECHANISM_INVALID:          keystore.ErrInvalidDigest,
		pkcs11.CKR_MECHANISM_PARAM_INVALID:    keystore.ErrInvalidDigest,
		pkcs11.CKR_KEY_TYPE_INCONSISTENT:      keystore.ErrInvalidDigest,
		pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED: keystore.ErrInvalidDigest,
		pkcs11.CKR_KEY_HANDLE_INVALID:         keystore.ErrKeyNotFound,
		pkcs11.CKR_OBJECT_HANDLE_INVALID:      keystore.ErrKeyNotFound,
	}
	genErrors = map[pkcs11.Error]error{
		pkcs11.CKR_MECHANISM_INVALID:       keystore.ErrUnsupportedKey,
		pkcs11.CKR_MECHANISM_PARAM_INVALID: keystore.ErrUnsupportedKey,
		pkcs11.CKR_ATTRIBUTE_VALUE_INVALID: keystore.ErrUnsupportedKey,
		pkcs11.CKR_TEMPLATE_INCONSISTENT:   keystore.ErrUnsupportedKey,
		pkcs11.CKR_KEY_SIZE_RANGE:          keystore.ErrUnsupportedKey,
		pkcs11.CKR_CURVE_NOT_SUPPORTED:     keystore.ErrUnsupportedKey,
	}
)

// mapError wraps a library error, adding the keystore error it stands for
// (if any in table) so that both errors.Is(err, keystore.ErrX) and
// errors.As(err, &pkcs11.Error) work.
func mapError(op string, err error, table map[pkcs11.Error]error) error {
	var ck pkcs11.Error
	if errors.As(err, &ck) {
		if kerr, ok := table[ck]; ok {
			return fmt.Errorf("p11: %s: %w: %w", op, kerr, err)
		}
	}
	return fmt.Errorf("p11: %s: %w", op, err)
}

// loginError explains a failed C_Login.
func loginError(label string, err error) error {
	var ck pkcs11.Error
	if errors.As(err, &ck) {
		switch ck {
		case pkcs11.CKR_PIN_INCORRECT:
			return fmt.Errorf("p11: login to token %q: wrong PIN: %w", label, err)
		case pkcs11.CKR_PIN_LOCKED:
			return fmt.Errorf("p11: login to token %q: the user PIN is locked (the security officer must reset it): %w", label, err)
		case pkcs11.CKR_USER_PIN_NOT_INITIALIZED:
			return fmt.Errorf("p11: login to token %q: the token has no user PIN yet: %w", label, err)
		}
	}
	return fmt.Errorf("p11: login to token %q: %w", label, err)
}

func isStaleHandle(err error) bool {
	return errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)) ||
		errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID))
}

func isDeadSession(err error) bool {
	for _, rv := range []pkcs11.Error{pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT} {
		if errors.Is(err, rv) {
			return true
		}
	}
	return false
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
