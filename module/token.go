package module

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/objects"
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
	objs       *objects.Set
	handles    map[string]ObjectHandle
	listedAt   time.Time
	refreshing chan struct{} // non-nil while a listing runs
	refreshErr error
	loggedIn   bool
	pin        []byte // the user's PIN (pin mode), wiped at logout
	pinFlags   uint   // CKF_USER_PIN_COUNT_LOW | _FINAL_TRY | _LOCKED
	sads       map[string]*sadPool
	// consents are the consent pages of SCAL1 batches going on in the
	// background (Options.SignWait), by credential ID.
	consents map[string]*pendingConsent
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
		t.cachePath = filepath.Join(cacheDir, t.serial+objects.CacheExt)
	}
	t.objs = t.build(&objects.KeySet{})
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
// fresh listings (see objects.ParseCredentials).
func (t *token) parse(creds []Credential, validate bool) *objects.KeySet {
	return objects.ParseCredentials(creds, validate, func(c Credential, err error) {
		t.log.Warn("credential skipped", "credential", c.ID, "err", err.Error())
	})
}

// build makes an object set from parsed credentials, keeping known
// handles. Callers hold t.mu (or own t exclusively).
func (t *token) build(ks *objects.KeySet) *objects.Set {
	objs := objects.BuildObjects(ks, objects.BuildOptions{
		PrivateKeys: !t.browserMode(),
		AlwaysAuth:  t.cfg.AlwaysAuthenticate && !t.browserMode(),
	})
	if len(t.handles) == 0 {
		t.handles = make(map[string]ObjectHandle, len(objs))
	}
	set := &objects.Set{List: objs, ByHandle: make(map[ObjectHandle]*objects.Object, len(objs)), Keys: ks.Keys}
	for _, o := range objs {
		h, ok := t.handles[o.Key]
		if !ok {
			h = ObjectHandle(t.st.objSeq.Add(1))
			t.handles[o.Key] = h
		}
		o.Handle = h
		set.ByHandle[h] = o
	}
	return set
}

func (t *token) objects() *objects.Set {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.objs
}

// visible reports whether a session of this token may see o now.
func (t *token) visible(o *objects.Object) bool {
	if !o.Private {
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
	for _, o := range objs.List {
		if o.KeyInfo == nil || o.Class != ck.CKO_PUBLIC_KEY {
			continue
		}
		k := o.KeyInfo
		for _, mt := range k.Mechs {
			mi, ok := out[mt]
			if !ok {
				// CKF_HW: the service's device signs (verification is
				// local, but the flag describes the mechanism).
				mi = MechanismInfo{MinKeySize: uint(k.Bits), MaxKeySize: uint(k.Bits), Flags: ck.CKF_HW | ck.CKF_SIGN | ck.CKF_VERIFY}
				if k.KeyType == ck.CKK_EC {
					mi.Flags |= ck.CKF_EC_F_P | ck.CKF_EC_NAMEDCURVE | ck.CKF_EC_UNCOMPRESS
				}
			}
			mi.MinKeySize = min(mi.MinKeySize, uint(k.Bits))
			mi.MaxKeySize = max(mi.MaxKeySize, uint(k.Bits))
			out[mt] = mi
		}
	}
	return out
}

// pinCopy returns a copy of the PIN for one use; the caller wipes it.
func (t *token) pinCopy() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.pin)
}

// logout forgets (wipes) the PIN and every SAD.
func (t *token) logout() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.loggedIn = false
	clear(t.pin)
	t.pin = nil
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
