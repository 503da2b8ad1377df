//go:build cgo

package p11

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// ctxAPI is the part of *pkcs11.Ctx this package uses; tests substitute a
// fake through loadModule.
type ctxAPI interface {
	Initialize(opts ...pkcs11.InitializeOption) error
	Finalize() error
	Destroy()
	GetSlotList(tokenPresent bool) ([]uint, error)
	GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error)
	OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error)
	CloseSession(sh pkcs11.SessionHandle) error
	Login(sh pkcs11.SessionHandle, userType uint, pin string) error
	Logout(sh pkcs11.SessionHandle) error
	GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error)
	GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error)
	GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error
	FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinal(sh pkcs11.SessionHandle) error
	SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error
}

var _ ctxAPI = (*pkcs11.Ctx)(nil)

// loadModule dlopens a PKCS#11 library. Tests replace it.
var loadModule = func(path string) (ctxAPI, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("p11: PKCS#11 module: %w", err)
	}
	c := pkcs11.New(path)
	if c == nil {
		// miekg/pkcs11 does not say why; dlopen failed or C_GetFunctionList is missing.
		return nil, fmt.Errorf("p11: cannot load PKCS#11 module %s: not a PKCS#11 library, wrong architecture or missing dependencies", path)
	}
	return c, nil
}

// module is one loaded PKCS#11 library, shared by every Backend of the
// process that names the same file.
//
// Every PKCS#11 call on the library's sessions is made with use held for
// reading; re-initialising the library (C_Finalize, C_Initialize: the only
// way to make SoftHSM2 read its token store again) holds it for writing,
// so no operation of any Backend is in flight on the sessions it
// invalidates. gen counts the re-initialisations: a Backend whose sessions
// are of an older generation knows they are gone.
type module struct {
	key         string
	ctx         ctxAPI
	refs        int          // Backends using it; guarded by modules.mu
	ownsInit    bool         // we called C_Initialize, so we call C_Finalize
	logins      map[uint]int // slot → Backends logged in; guarded by modules.mu
	use         sync.RWMutex
	gen         atomic.Uint64 // written with use held for writing
	initialized atomic.Bool   // false after a failed re-initialisation; written with use held for writing
}

var modules = struct {
	mu sync.Mutex
	m  map[string]*module
}{m: make(map[string]*module)}

// moduleKey names a library file independently of how its path is spelled.
func moduleKey(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	return path
}

// acquireModule loads and initialises the library at path, or takes
// another reference to it. Each success must be paired with release.
func acquireModule(path string) (*module, error) {
	key := moduleKey(path)
	modules.mu.Lock()
	defer modules.mu.Unlock()
	if m, ok := modules.m[key]; ok {
		m.refs++
		return m, nil
	}
	c, err := loadModule(path)
	if err != nil {
		return nil, err
	}
	m := &module{key: key, ctx: c, refs: 1, ownsInit: true, logins: make(map[uint]int)}
	m.initialized.Store(true)
	if err := c.Initialize(); err != nil {
		if !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
			c.Destroy()
			return nil, fmt.Errorf("p11: C_Initialize %s: %w", path, err)
		}
		m.ownsInit = false // someone else in the process did; leave finalizing to them
	}
	modules.m[key] = m
	return m, nil
}

// soleOwner reports whether one Backend holds m and this process
// initialised the library: then Open may initialise it again.
func (m *module) soleOwner() bool {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	return m.refs == 1 && m.ownsInit
}

// release drops a reference; the last one finalizes and unloads the library.
func (m *module) release() error {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(modules.m, m.key)
	var err error
	if m.ownsInit && m.initialized.Load() {
		if ferr := m.ctx.Finalize(); ferr != nil {
			err = fmt.Errorf("p11: C_Finalize: %w", ferr)
		}
	}
	m.ctx.Destroy()
	return err
}

// login logs the user in to slot's token through sh, unless a Backend of
// this process already did (the login state is shared by the whole
// application). Each success must be paired with logout.
func (m *module) login(slot uint, sh pkcs11.SessionHandle, pin string) error {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	if err := m.ctx.Login(sh, pkcs11.CKU_USER, pin); err != nil &&
		!errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		return err
	}
	m.logins[slot]++
	return nil
}

// logout undoes one login; the last one logs the token out. sh may be 0 when
// no session is left (closing the last session logs out anyway).
func (m *module) logout(slot uint, sh pkcs11.SessionHandle) error {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	m.logins[slot]--
	if m.logins[slot] > 0 {
		return nil
	}
	delete(m.logins, slot)
	if sh == 0 {
		return nil
	}
	if err := m.ctx.Logout(sh); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)) {
		return fmt.Errorf("p11: C_Logout: %w", err)
	}
	return nil
}

// reinitLocked finalizes the library and initialises it again, so that it
// finds its tokens and objects anew; after a failed C_Initialize it only
// tries C_Initialize again. Every session and login of the library is then
// gone, for every Backend using it. The caller holds m.use for writing, and
// the library must be ours to finalize (m.ownsInit).
func (m *module) reinitLocked() error {
	if m.initialized.Load() {
		// An error here changes nothing: the library's state goes anyway.
		_ = m.ctx.Finalize()
		m.initialized.Store(false)
		m.gen.Add(1)
		m.forgetLogins()
	}
	if err := m.ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		return fmt.Errorf("p11: C_Initialize: %w", err)
	}
	m.initialized.Store(true)
	return nil
}

// forgetLogins clears the login counts (the library forgot every login).
func (m *module) forgetLogins() {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	clear(m.logins)
}

// dropLogin undoes one login in the counts without calling C_Logout, for a
// Backend that gives up its sessions on a token that went away.
func (m *module) dropLogin(slot uint) {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	if m.logins[slot] > 1 {
		m.logins[slot]--
	} else {
		delete(m.logins, slot)
	}
}
