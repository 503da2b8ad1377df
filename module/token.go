package module

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
)

var errNoService error = noServiceError{}

// noServiceError is errNoService: ErrUnreachable, without a fmt.Errorf
// when the library loads.
type noServiceError struct{}

func (noServiceError) Error() string { return "no service client: " + ErrUnreachable.Error() }
func (noServiceError) Unwrap() error { return ErrUnreachable }

// token is one slot's token: a CSC service and the user's credentials.
type token struct {
	st        *state
	slot      SlotID
	cfg       config.Service
	svc       Service
	serial    string
	cachePath string
	log       *slog.Logger

	// loginMu serialises C_Login calls on this token (they may wait on the
	// network and the browser); it is never taken by signing or metadata.
	loginMu sync.Mutex

	mu         sync.Mutex // guards everything below
	objs       *objectSet
	handles    map[string]ObjectHandle
	listedAt   time.Time
	refreshing chan struct{} // non-nil while a listing runs
	refreshErr error
	loggedIn   bool
	pin        string
	pinFlags   uint // CKF_USER_PIN_COUNT_LOW | _FINAL_TRY | _LOCKED
	sads       map[string]*sadPool
	// preauth is the background pre-authorization of the current login
	// (see Module.preauthorizeLater); nil when none was started.
	preauth *background
}

// background is work that goroutines do for a token: stop ends it, done is
// closed when it has ended.
type background struct {
	stop context.CancelFunc
	done <-chan struct{}
}

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

func newToken(st *state, slot SlotID, sc config.Service, cacheDir string) *token {
	t := &token{
		st:      st,
		slot:    slot,
		cfg:     sc,
		serial:  tokenSerial(sc),
		log:     st.log.With("slot", uint(slot), "service", sc.Name),
		handles: map[string]ObjectHandle{},
		sads:    map[string]*sadPool{},
	}
	if t.cfg.Timeout <= 0 {
		t.cfg.Timeout = config.DefaultTimeout
	}
	if t.cfg.ListTimeout <= 0 {
		t.cfg.ListTimeout = config.DefaultListTimeout
	}
	if cacheDir != "" {
		t.cachePath = filepath.Join(cacheDir, t.serial+cacheExt)
	}
	t.objs = t.build(&keySet{})
	return t
}

func (t *token) browserMode() bool { return t.cfg.CredentialAuth == config.CredentialAuthBrowser }

// flags computes CK_TOKEN_INFO.flags.
func (t *token) flags() uint {
	f := uint(ck.CKF_TOKEN_INITIALIZED | ck.CKF_USER_PIN_INITIALIZED | ck.CKF_WRITE_PROTECTED | ck.CKF_RNG)
	if t.browserMode() {
		f |= ck.CKF_PROTECTED_AUTHENTICATION_PATH
	} else {
		f |= ck.CKF_LOGIN_REQUIRED
	}
	t.mu.Lock()
	f |= t.pinFlags
	t.mu.Unlock()
	return f
}

// parse reads credentials' certificates (no lock needed); validate for
// fresh listings (see parseCredentials).
func (t *token) parse(creds []Credential, validate bool) *keySet {
	return parseCredentials(creds, validate, func(c Credential, err error) {
		t.log.Warn("credential skipped", "credential", c.ID, "err", err.Error())
	})
}

// build makes an object set from parsed credentials, keeping known
// handles. Callers hold t.mu (or own t exclusively).
func (t *token) build(ks *keySet) *objectSet {
	objs := buildObjects(ks, buildOptions{
		privateKeys: !t.browserMode(),
		alwaysAuth:  t.cfg.AlwaysAuthenticate && !t.browserMode(),
	})
	if len(t.handles) == 0 {
		t.handles = make(map[string]ObjectHandle, len(objs))
	}
	set := &objectSet{list: objs, byHandle: make(map[ObjectHandle]*object, len(objs)), keys: ks.keys}
	for _, o := range objs {
		h, ok := t.handles[o.key]
		if !ok {
			h = ObjectHandle(t.st.objSeq.Add(1))
			t.handles[o.key] = h
		}
		o.handle = h
		set.byHandle[h] = o
	}
	return set
}

func (t *token) objects() *objectSet {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.objs
}

// visible reports whether a session of this token may see o now.
func (t *token) visible(o *object) bool {
	if !o.private {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.loggedIn
}

func (t *token) isLoggedIn() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.loggedIn
}

// mechanismInfos derives the slot's signature mechanisms from its keys,
// with the true key size range.
func (t *token) mechanismInfos() map[uint]MechanismInfo {
	out := map[uint]MechanismInfo{}
	objs := t.objects()
	if objs == nil {
		return out
	}
	for _, o := range objs.list {
		if o.ki == nil || o.class != ck.CKO_PUBLIC_KEY {
			continue
		}
		k := o.ki
		for _, mt := range k.mechs {
			mi, ok := out[mt]
			if !ok {
				mi = MechanismInfo{MinKeySize: uint(k.bits), MaxKeySize: uint(k.bits), Flags: ck.CKF_SIGN | ck.CKF_VERIFY}
				if k.keyType == ck.CKK_EC {
					mi.Flags |= ck.CKF_EC_F_P | ck.CKF_EC_NAMEDCURVE | ck.CKF_EC_UNCOMPRESS
				}
			}
			mi.MinKeySize = min(mi.MinKeySize, uint(k.bits))
			mi.MaxKeySize = max(mi.MaxKeySize, uint(k.bits))
			out[mt] = mi
		}
	}
	return out
}

// refreshAsync starts a background listing unless one is running.
func (t *token) refreshAsync() {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				t.log.Error("panic in background refresh", "panic", fmt.Sprint(r))
			}
		}()
		if err := t.refresh(t.st.ctx); err != nil {
			t.log.Info("background listing failed", "err", err.Error())
		}
	}()
}

// maybeRefresh starts a background listing when the last one is older
// than the TTL. Never blocks.
func (t *token) maybeRefresh() {
	if t.st.opts.NoBackgroundRefresh || t.svc == nil {
		return
	}
	t.mu.Lock()
	stale := t.refreshing == nil && t.staleLocked()
	t.mu.Unlock()
	if stale {
		t.refreshAsync()
	}
}

// staleLocked reports whether the listing is older than the TTL (or from
// the future: a clock that went back, a foreign cache). Called with t.mu
// held.
func (t *token) staleLocked() bool {
	age := t.st.opts.Now().Sub(t.listedAt)
	return age > t.st.opts.ListingTTL || age < -time.Minute
}

// neverListed reports whether the token has no listing at all: neither
// from this process nor from the disk cache.
func (t *token) neverListed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.listedAt.IsZero()
}

// refresh lists the credentials, single-flight: a caller arriving while a
// listing runs waits for that one (or for ctx).
func (t *token) refresh(ctx context.Context) error {
	if t.svc == nil {
		return errNoService
	}
	t.mu.Lock()
	if ch := t.refreshing; ch != nil {
		t.mu.Unlock()
		select {
		case <-ch:
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.refreshErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ch := make(chan struct{})
	t.refreshing = ch
	t.mu.Unlock()

	lctx, cancel := context.WithTimeout(ctx, t.cfg.ListTimeout)
	creds, err := t.svc.ListCredentials(lctx)
	cancel()
	var ks *keySet
	if err == nil {
		ks = t.parse(creds, true)
		// Save before publishing: a program that exits as soon as it sees
		// the objects (pkcs11-tool --list-slots) must not cut the write
		// short.
		if ctx.Err() == nil {
			t.saveCache(ks.creds())
		}
	}

	t.mu.Lock()
	if err == nil {
		t.objs = t.build(ks)
		t.listedAt = t.st.opts.Now()
	} else {
		err = fmt.Errorf("list credentials: %w", err)
	}
	t.refreshErr = err
	t.refreshing = nil
	close(ch)
	t.mu.Unlock()
	return err
}

// credentialSeeder is implemented by a Service that can use the
// credentials of the listing cache before the first listing of the process
// (cscservice: how each credential is authorized), sparing requests.
type credentialSeeder interface {
	SeedCredentials(creds []Credential)
}

// loadCache shows the last listing cached on disk (cache.go) until a
// listing of this process replaces it. A missing, unreadable, corrupt or
// foreign cache is ignored (with a log line, but for a missing one).
func (t *token) loadCache() {
	if t.cachePath == "" {
		return
	}
	removeStaleTemps(filepath.Dir(t.cachePath))
	data, err := os.ReadFile(t.cachePath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			t.log.Warn("cache unreadable", "path", t.cachePath, "err", err.Error())
		} else if old := t.oldCachePath(); fileExists(old) {
			t.log.Info("cache of an older version ignored", "path", old)
		}
		return
	}
	cf, err := decodeCache(data)
	if err == nil && (cf.url != t.cfg.URL || cf.user != t.cfg.Username) {
		err = errors.New("written for another service URL or user")
	}
	if err != nil {
		t.log.Warn("cache ignored", "path", t.cachePath, "err", err.Error())
		return
	}
	ks := t.parse(cf.creds, false)
	if s, ok := t.svc.(credentialSeeder); ok {
		s.SeedCredentials(cf.creds)
	}
	t.mu.Lock()
	t.objs = t.build(ks)
	t.listedAt = cf.listed
	t.mu.Unlock()
}

func (t *token) saveCache(creds []Credential) {
	if t.cachePath == "" {
		return
	}
	data, err := encodeCache(cacheData{url: t.cfg.URL, user: t.cfg.Username, listed: t.st.opts.Now().UTC(), creds: creds})
	if err == nil {
		err = writeFileAtomic(t.cachePath, data)
	}
	if err != nil {
		t.log.Warn("cache not written", "path", t.cachePath, "err", err.Error())
		return
	}
	if old := t.oldCachePath(); fileExists(old) {
		_ = os.Remove(old)
	}
}

// oldCachePath is where versions before cache format 2 kept the listing
// (JSON).
func (t *token) oldCachePath() string {
	return strings.TrimSuffix(t.cachePath, cacheExt) + ".json"
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// removeStaleTemps deletes temporary cache files that a process killed
// in the middle of writeFileAtomic left behind (older than a minute, so a
// concurrent writer's file is left alone).
func removeStaleTemps(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && time.Since(st.ModTime()) > time.Minute {
			_ = os.Remove(m)
		}
	}
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("cache dir: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*"+filepath.Ext(path))
	if err != nil {
		return fmt.Errorf("cache temp file: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("cache chmod: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("cache write: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cache close: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("cache rename: %w", err)
	}
	return nil
}

// logout forgets the PIN and every SAD.
func (t *token) logout() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.loggedIn = false
	t.pin = ""
	t.sads = map[string]*sadPool{}
	if t.preauth != nil {
		t.preauth.stop()
		t.preauth = nil
	}
}

// notePINResult updates the PIN-count flags after an authorization.
func (t *token) notePINResult(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var pe *PINError
	switch {
	case err == nil:
		t.pinFlags = 0
	case errors.Is(err, ErrPINLocked):
		t.pinFlags = ck.CKF_USER_PIN_LOCKED
	case errors.As(err, &pe) && pe.RemainingAttempts == 1:
		t.pinFlags = ck.CKF_USER_PIN_COUNT_LOW | ck.CKF_USER_PIN_FINAL_TRY
	case errors.As(err, &pe) && pe.RemainingAttempts == 0:
		t.pinFlags = ck.CKF_USER_PIN_LOCKED
	case errors.Is(err, ErrPINIncorrect):
		t.pinFlags = ck.CKF_USER_PIN_COUNT_LOW
	}
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
