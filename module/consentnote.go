package module

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/csctoken/csctoken/module/config"
)

// ConsentNote is what a host program's module tells `csctoken status`
// about a consent page that C_Sign stopped waiting for (Options.SignWait):
// still waiting for the user, or approved and kept for the retry. It is a
// small file next to the token's cache (no secret: no SAD), removed when
// the consent is used up, ends or the module finalizes.
type ConsentNote struct {
	PID        int       `json:"pid"`
	Program    string    `json:"program"`
	Credential string    `json:"credential"`
	State      string    `json:"state"` // "waiting" or "approved"
	Since      time.Time `json:"since"`
	Signatures int       `json:"signatures"`
	Expires    time.Time `json:"expires,omitzero"`
}

const consentNoteExt = ".consent.json"

// consentNotePath is this process's note for the token, or "" without a
// cache directory.
func (t *token) consentNotePath() string {
	if t.cachePath == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(t.cachePath), t.serial+"-"+strconv.Itoa(os.Getpid())+consentNoteExt)
}

// writeConsentNote records n (best effort: a note that cannot be written
// only leaves status without it).
func (t *token) writeConsentNote(n ConsentNote) {
	p := t.consentNotePath()
	if p == "" {
		return
	}
	n.PID = os.Getpid()
	if n.Program == "" {
		n.Program = filepath.Base(os.Args[0])
	}
	b, err := json.Marshal(n)
	if err == nil {
		err = writeFileAtomic(p, b)
	}
	if err != nil {
		t.log.Debug("consent note not written", "err", err.Error())
	}
}

func (t *token) removeConsentNote() {
	if p := t.consentNotePath(); p != "" {
		_ = os.Remove(p)
	}
}

// ConsentNotes returns the notes of running host programs about consents
// for the service (cacheDir empty: the module's default). Notes of
// processes that are gone, or of approvals that expired, are removed.
func ConsentNotes(cacheDir string, sc config.Service, now time.Time) ([]ConsentNote, error) {
	if cacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, err
		}
		cacheDir = filepath.Join(d, "csctoken")
	}
	files, err := filepath.Glob(filepath.Join(cacheDir, tokenSerial(sc)+"-*"+consentNoteExt))
	if err != nil {
		return nil, err
	}
	var notes []ConsentNote
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return notes, err
		}
		var n ConsentNote
		if err := json.Unmarshal(b, &n); err != nil || n.PID <= 0 {
			return notes, fmt.Errorf("%s: not a consent note", f)
		}
		pidText := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), tokenSerial(sc)+"-"), consentNoteExt)
		if _, err := os.Stat(filepath.Join("/proc", pidText)); err != nil || pidText != strconv.Itoa(n.PID) ||
			(!n.Expires.IsZero() && now.After(n.Expires)) {
			_ = os.Remove(f)
			continue
		}
		notes = append(notes, n)
	}
	return notes, nil
}
