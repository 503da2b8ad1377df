package p11

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
)

// Config selects a token and sizes the session pool.
type Config struct {
	// Module is the path of the PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so. Required.
	Module string
	// TokenLabel selects the token by its label (trailing blanks ignored).
	// Exactly one initialised token must carry it. Required.
	TokenLabel string
	// PIN is the user PIN. Required. The Backend keeps it in memory to log
	// in again if the token forgets the login.
	PIN string
	// PoolSize is the number of sessions to open. Zero means
	// max(4, 2*runtime.NumCPU()). The size is raised to runtime.NumCPU()
	// and then capped by the token's MaxRwSessionCount when it reports
	// one. Negative is an error.
	PoolSize int
	// PoolWait bounds how long an operation waits for a free session
	// (within its context's own deadline). Zero means DefaultPoolWait.
	// Negative is an error.
	PoolWait time.Duration
	// Logger receives open, close and session-recovery events. Nil means
	// no logging. PINs are never logged.
	Logger *slog.Logger
	// ReopenMinWait and ReopenMaxWait bound the wait between two attempts
	// to re-open a token that went away: the first attempt comes
	// ReopenMinWait after the loss, then the wait doubles up to
	// ReopenMaxWait. Zero means DefaultReopenMinWait, DefaultReopenMaxWait.
	// Negative is an error.
	ReopenMinWait, ReopenMaxWait time.Duration
	// CheckTTL is how long a result of Check is reused, so that frequent
	// readiness probes do not load the token. Zero means DefaultCheckTTL;
	// negative is an error.
	CheckTTL time.Duration
}

// Defaults of the Config durations left at zero.
const (
	DefaultPoolWait      = 30 * time.Second
	DefaultReopenMinWait = 250 * time.Millisecond
	DefaultReopenMaxWait = 8 * time.Second
	DefaultCheckTTL      = time.Second
)

// Errors specific to this backend (wrapped with %w). Errors from the
// library stay reachable with errors.As(err, new(pkcs11.Error)).
var (
	// ErrTokenNotFound: no initialised token carries Config.TokenLabel.
	ErrTokenNotFound = errors.New("p11: token not found")
	// ErrPoolExhausted: no session became free within Config.PoolWait. It
	// wraps keystore.ErrBusy.
	ErrPoolExhausted = fmt.Errorf("p11: no free PKCS#11 session: %w", keystore.ErrBusy)
	// ErrNoCgo: the binary was built without cgo, so PKCS#11 is unavailable.
	ErrNoCgo = errors.New("p11: built without cgo; the PKCS#11 backend is unavailable (rebuild with CGO_ENABLED=1)")
)

func (c Config) validate() error {
	var errs []error
	if c.Module == "" {
		errs = append(errs, errors.New("the PKCS#11 library path (Module) is required"))
	}
	if c.TokenLabel == "" {
		errs = append(errs, errors.New("TokenLabel is required"))
	}
	if c.PIN == "" {
		errs = append(errs, errors.New("PIN is required"))
	}
	if c.PoolSize < 0 {
		errs = append(errs, errors.New("PoolSize must not be negative"))
	}
	if c.PoolWait < 0 {
		errs = append(errs, errors.New("PoolWait must not be negative"))
	}
	if c.ReopenMinWait < 0 || c.ReopenMaxWait < 0 || c.CheckTTL < 0 {
		errs = append(errs, errors.New("ReopenMinWait, ReopenMaxWait and CheckTTL must not be negative"))
	}
	return errors.Join(errs...)
}
