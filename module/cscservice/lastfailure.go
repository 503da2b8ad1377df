package cscservice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
)

// The last failure of each service, kept on disk so that `csctoken status`
// and `csctoken doctor` can tell the user what a program only showed as
// CKR_DEVICE_ERROR or CKR_USER_NOT_LOGGED_IN: when, what failed, and what
// to do. One small JSON file per service and user under
// os.UserCacheDir()/csctoken/failures (never a secret: the error texts are
// the module's, which hold none).

// LastFailure is a service's last failure.
type LastFailure struct {
	Time  time.Time `json:"time"`
	What  string    `json:"what"`  // the operation and its error
	ToDo  string    `json:"to_do"` // what the user can do, "" when nothing specific
	Class string    `json:"class"` // unreachable, not_logged_in, pin_locked, wrong_pin, rejected, other
}

// failureFile is the file of one service and user.
func failureFile(sc config.Service) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(sc.URL + "\x00" + sc.Username))
	return filepath.Join(dir, "csctoken", "failures", hex.EncodeToString(sum[:8])+".json"), nil
}

// ReadLastFailure returns the last failure recorded for sc; nil when none.
func ReadLastFailure(sc config.Service) (*LastFailure, error) {
	path, err := failureFile(sc)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f LastFailure
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// recordFailure keeps err (as mapErr returns it) as the service's last
// failure. Cancellations are not failures. It never fails the caller: a
// failure that cannot be written is logged.
func (s *Service) recordFailure(err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	f := LastFailure{Time: time.Now().UTC().Truncate(time.Second), What: err.Error(), Class: "other"}
	var pe *module.PINError
	switch {
	case errors.Is(err, module.ErrUnreachable):
		f.Class, f.ToDo = "unreachable", fmt.Sprintf("the service at %s could not be reached: check the network, the URL and that the service runs (`csctoken doctor`)", s.cfg.URL)
	case errors.Is(err, module.ErrNotLoggedIn):
		f.Class, f.ToDo = "not_logged_in", "log in again: "+loginCommand(s.cfg.Name)
	case errors.Is(err, module.ErrPINLocked):
		f.Class, f.ToDo = "pin_locked", "the credential's PIN is locked after too many wrong tries: ask your administrator to unlock it"
	case errors.As(err, &pe):
		f.Class, f.ToDo = "wrong_pin", "a wrong PIN was entered"
		if pe.RemainingAttempts >= 0 {
			f.ToDo += fmt.Sprintf(" (%d attempt(s) left before the credential locks)", pe.RemainingAttempts)
		}
	case errors.Is(err, module.ErrRejected):
		f.Class, f.ToDo = "rejected", "the service refused the request (disabled credential, or a parameter it does not accept): see the message"
	}
	path, perr := failureFile(s.cfg)
	if perr == nil {
		perr = writeFailure(path, f)
	}
	if perr != nil {
		s.log.Debug("the last failure could not be recorded", "err", perr)
	}
}

func writeFailure(path string, f LastFailure) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loginCommand is the command that logs in to the service named name.
func loginCommand(name string) string {
	return "`csctoken login --service " + shellQuote(name) + "`"
}
