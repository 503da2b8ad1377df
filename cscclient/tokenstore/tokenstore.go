// Package tokenstore keeps service tokens (or any small secret) per service
// URL and user: in the OS keyring through github.com/zalando/go-keyring
// (the Secret Service over D-Bus on Linux, the Keychain on macOS, the
// Credential Manager on Windows), and where no keyring answers in a file of
// mode 0600 under os.UserConfigDir()/csctoken/tokens. Store.Locate and
// Store.Last say which one holds a token (for `csctoken status`).
//
// On Linux the keyring is used only when a D-Bus session bus is there
// (DBUS_SESSION_BUS_ADDRESS, or $XDG_RUNTIME_DIR/bus): go-keyring would
// otherwise autolaunch a bus with dbus-launch. Every keyring call is bounded
// by Options.Timeout, since a locked collection may wait on a prompt no one
// sees; a keyring that failed once is not asked again by the same Store.
//
// Nothing secret is logged. A Store is safe for concurrent use.
//
//	s, err := tokenstore.New(tokenstore.Options{})
//	err = s.Set(ctx, "https://rssp.example/csc/v2", "alice", token)
//	loc, err := s.Locate(ctx, "https://rssp.example/csc/v2", "alice")
//	fmt.Println(loc.Backend) // "keyring" or "file"
package tokenstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/zalando/go-keyring"
)

// Backend names where a secret is kept.
type Backend string

// Backends.
const (
	BackendNone    Backend = "none"
	BackendKeyring Backend = "keyring"
	BackendFile    Backend = "file"
)

var (
	// ErrNotFound: nothing stored for this service and user. It wraps
	// fs.ErrNotExist, which is what cscclient.SecretStore users test.
	ErrNotFound = fmt.Errorf("tokenstore: nothing stored: %w", fs.ErrNotExist)
	// ErrKeyringUnavailable: no keyring answered.
	ErrKeyringUnavailable = errors.New("tokenstore: no keyring available")
	// ErrInsecureFile: a token file is readable by others; it is not used.
	ErrInsecureFile = errors.New("tokenstore: token file is accessible to other users")
)

// keyringPrefix prefixes the keyring's service attribute.
const keyringPrefix = "csctoken "

// Keyring is the seam over the OS keyring (go-keyring's functions).
// Get returns keyring.ErrNotFound when there is no such secret.
type Keyring interface {
	Get(service, user string) (string, error)
	Set(service, user, secret string) error
	Delete(service, user string) error
}

type osKeyring struct{}

func (osKeyring) Get(service, user string) (string, error) { return keyring.Get(service, user) }
func (osKeyring) Set(service, user, secret string) error   { return keyring.Set(service, user, secret) }
func (osKeyring) Delete(service, user string) error        { return keyring.Delete(service, user) }

// Options configure a Store.
type Options struct {
	// Dir holds the token files; os.UserConfigDir()/csctoken/tokens when
	// empty.
	Dir string
	// Keyring replaces the OS keyring (tests). Nil: the OS keyring.
	Keyring Keyring
	// NoKeyring keeps tokens in files only.
	NoKeyring bool
	// Timeout bounds one keyring call; 5s when zero.
	Timeout time.Duration
	// Logger: nothing is logged when nil.
	Logger *slog.Logger
}

// Store keeps secrets per service and user.
type Store struct {
	dir     string
	kr      Keyring
	timeout time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	krDown error   // why the keyring is not used, or nil
	last   Backend // backend of the last successful Get or Set
}

// New returns a Store. It touches neither the keyring nor the disk.
func New(opts Options) (*Store, error) {
	s := &Store{dir: opts.Dir, kr: opts.Keyring, timeout: opts.Timeout, log: opts.Logger, last: BackendNone}
	if s.dir == "" {
		cfg, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("tokenstore: no config directory: %w", err)
		}
		s.dir = filepath.Join(cfg, "csctoken", "tokens")
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.NoKeyring:
		s.krDown = fmt.Errorf("%w: disabled", ErrKeyringUnavailable)
	case s.kr == nil:
		s.kr = osKeyring{}
		if err := sessionBus(); err != nil {
			s.krDown = err
		}
	}
	return s, nil
}

// sessionBus checks, where the keyring is the Secret Service, that a D-Bus
// session bus is there to ask.
func sessionBus() error {
	switch runtime.GOOS {
	case "darwin", "windows", "ios", "android":
		return nil
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return nil
	}
	for _, dir := range []string{os.Getenv("XDG_RUNTIME_DIR"), "/run/user/" + strconv.Itoa(os.Getuid())} {
		if dir == "" {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, "bus")); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
	}
	return fmt.Errorf("%w: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset)", ErrKeyringUnavailable)
}

// Dir returns the directory of the token files.
func (s *Store) Dir() string { return s.dir }

// Last returns the backend of the last successful Get or Set.
func (s *Store) Last() Backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *Store) setLast(b Backend) {
	s.mu.Lock()
	s.last = b
	s.mu.Unlock()
}

func (s *Store) keyringDown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.krDown
}

func (s *Store) markDown(err error) {
	s.mu.Lock()
	if s.krDown == nil {
		s.krDown = err
	}
	s.mu.Unlock()
	s.log.Info("keyring unavailable; token files are used", "err", err)
}

// keyring runs f against the keyring within the timeout. On a timeout the
// call is abandoned (its goroutine ends when the keyring answers).
func (s *Store) keyring(ctx context.Context, f func() error) error {
	if err := s.keyringDown(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, keyring.ErrNotFound) {
			return err
		}
		err = fmt.Errorf("%w: %w", ErrKeyringUnavailable, err)
		s.markDown(err)
		return err
	case <-ctx.Done():
		err := fmt.Errorf("%w: no answer within %v", ErrKeyringUnavailable, s.timeout)
		s.markDown(err)
		return err
	}
}

// KeyringStatus returns nil when the keyring answers (a lookup of a name
// that does not exist), else why it does not.
func (s *Store) KeyringStatus(ctx context.Context) error {
	err := s.keyring(ctx, func() error {
		_, err := s.kr.Get(keyringPrefix+"probe", "probe")
		return err
	})
	if errors.Is(err, keyring.ErrNotFound) {
		return nil
	}
	return err
}

// Get returns the secret of service and user, from the keyring or else the
// file; ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, service, user string) ([]byte, error) {
	var v string
	err := s.keyring(ctx, func() error {
		var err error
		v, err = s.kr.Get(keyringPrefix+service, user)
		return err
	})
	if err == nil {
		b, derr := decodeKeyringValue(v)
		if derr == nil {
			s.setLast(BackendKeyring)
			return b, nil
		}
		s.log.Warn("keyring entry unreadable, ignored", "service", service, "user", user)
	}
	b, ferr := s.readFile(service, user)
	if ferr != nil {
		return nil, ferr
	}
	s.setLast(BackendFile)
	return b, nil
}

// Set stores secret for service and user: in the keyring (removing a file
// left by an earlier fallback), or else in a 0600 file.
func (s *Store) Set(ctx context.Context, service, user string, secret []byte) error {
	err := s.keyring(ctx, func() error {
		return s.kr.Set(keyringPrefix+service, user, encodeKeyringValue(secret))
	})
	if err == nil {
		if rerr := os.Remove(s.path(service, user)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Warn("stale token file not removed", "path", s.path(service, user), "err", rerr)
		}
		s.setLast(BackendKeyring)
		return nil
	}
	if err := s.writeFile(service, user, secret); err != nil {
		return err
	}
	s.setLast(BackendFile)
	return nil
}

// Delete removes the secret of service and user from both places. It is not
// an error when there is none.
func (s *Store) Delete(ctx context.Context, service, user string) error {
	var first error
	err := s.keyring(ctx, func() error { return s.kr.Delete(keyringPrefix+service, user) })
	if err != nil && !errors.Is(err, keyring.ErrNotFound) && !errors.Is(err, ErrKeyringUnavailable) {
		first = err
	}
	if err := os.Remove(s.path(service, user)); err != nil && !errors.Is(err, fs.ErrNotExist) && first == nil {
		first = fmt.Errorf("tokenstore: %w", err)
	}
	return first
}

// Location says where the secret of a service and user is.
type Location struct {
	Backend Backend // BackendNone when nothing is stored
	Path    string  // the file, for BackendFile
	// KeyringError says why the keyring was not used, if it was not.
	KeyringError error
}

// Locate says where the secret of service and user is, without returning it.
func (s *Store) Locate(ctx context.Context, service, user string) (Location, error) {
	err := s.keyring(ctx, func() error {
		_, err := s.kr.Get(keyringPrefix+service, user)
		return err
	})
	if err == nil {
		return Location{Backend: BackendKeyring}, nil
	}
	loc := Location{Backend: BackendNone}
	if !errors.Is(err, keyring.ErrNotFound) {
		loc.KeyringError = err
	}
	p := s.path(service, user)
	if _, err := s.readFile(service, user); err == nil {
		loc.Backend, loc.Path = BackendFile, p
	} else if !errors.Is(err, fs.ErrNotExist) {
		return loc, err
	}
	return loc, nil
}

const b64Prefix = "b64:"

// encodeKeyringValue keeps UTF-8 secrets readable in keyring tools.
func encodeKeyringValue(b []byte) string {
	if utf8.Valid(b) && !strings.HasPrefix(string(b), b64Prefix) {
		return string(b)
	}
	return b64Prefix + base64.StdEncoding.EncodeToString(b)
}

func decodeKeyringValue(v string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(v, b64Prefix); ok {
		return base64.StdEncoding.DecodeString(rest)
	}
	return []byte(v), nil
}

// path names the file of service and user by a hash, so that neither
// shapes the path.
func (s *Store) path(service, user string) string {
	sum := sha256.Sum256([]byte(service + "\x00" + user))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:16])+".json")
}

type fileRecord struct {
	Service string `json:"service"`
	User    string `json:"user"`
	Secret  []byte `json:"secret"` // base64 in JSON
}

func (s *Store) readFile(service, user string) ([]byte, error) {
	p := s.path(service, user)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("tokenstore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tokenstore: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v (want 0600)", ErrInsecureFile, p, fi.Mode().Perm())
	}
	if fi.Size() > 1<<20 {
		return nil, fmt.Errorf("tokenstore: %s is too large", p)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("tokenstore: %w", err)
	}
	var r fileRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("tokenstore: %s is corrupt", p)
	}
	if r.Service != service || r.User != user {
		return nil, ErrNotFound // a hash collision, in theory
	}
	return r.Secret, nil
}

// writeFile writes atomically: a 0600 temporary file in the same
// directory, synced, then renamed.
func (s *Store) writeFile(service, user string, secret []byte) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("tokenstore: %w", err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(s.dir, 0o700); err != nil {
			return fmt.Errorf("tokenstore: %w", err)
		}
	}
	data, err := json.Marshal(fileRecord{Service: service, User: user, Secret: secret})
	if err != nil {
		return fmt.Errorf("tokenstore: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, ".token-*")
	if err != nil {
		return fmt.Errorf("tokenstore: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("tokenstore: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("tokenstore: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("tokenstore: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("tokenstore: %w", err)
	}
	if err := os.Rename(name, s.path(service, user)); err != nil {
		return fmt.Errorf("tokenstore: %w", err)
	}
	return nil
}
