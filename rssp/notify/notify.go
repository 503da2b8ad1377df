// Package notify is the RSSP's out-of-band channel: how a PasswordOOB
// approval request or an online OTP reaches the user. Production
// deployments plug in a push service or SMS gateway behind Notifier; the
// shipped Spool notifier writes each message as a file into a spool
// directory (approval links also to the server log when LogLinks is set,
// for demos; never codes), which is
// how a test, or an operator in a demo, acts as the user's phone.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Kind says what a message carries.
type Kind string

const (
	// Approval carries a link to the approval page (PasswordOOB).
	Approval Kind = "approval"
	// OTP carries a one-time code (an online OTP, ChallengeResponse).
	OTP Kind = "otp"
)

// Message is one notification to a user.
type Message struct {
	Kind         Kind      `json:"kind"`
	User         string    `json:"user"`
	CredentialID string    `json:"credentialID"`
	Link         string    `json:"link,omitempty"` // Approval
	Code         string    `json:"code,omitempty"` // OTP
	Text         string    `json:"text"`           // what the user is asked
	Expires      time.Time `json:"expires"`
}

// Notifier delivers messages.
type Notifier interface {
	Notify(ctx context.Context, m Message) error
}

// Spool writes each message as a JSON file named
// <unix-nanos>-<seq>-<kind>-<credentialID>.json (mode 0600) into Dir.
type Spool struct {
	Dir string
	Log *slog.Logger
	// LogLinks also writes approval links to Log. A link is a bearer
	// capability (whoever opens it approves): for demos only, off by
	// default; the log otherwise never holds a secret.
	LogLinks bool
	seq      atomic.Uint64
}

// Notify implements Notifier.
func (s *Spool) Notify(ctx context.Context, m Message) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%020d-%06d-%s-%s.json", time.Now().UnixNano(), s.seq.Add(1), m.Kind, safe(m.CredentialID))
	tmp := filepath.Join(s.Dir, "."+name)
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Dir, name)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if s.Log != nil {
		attrs := []any{"kind", m.Kind, "user", m.User, "credential", m.CredentialID, "file", name}
		if m.Kind == Approval && s.LogLinks {
			attrs = append(attrs, "link", m.Link)
		}
		s.Log.Info("out-of-band notification", attrs...)
	}
	return nil
}

func safe(s string) string {
	out := []byte(s)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			out[i] = '_'
		}
	}
	return string(out)
}

// Latest returns the newest message of kind k for credID in dir (tests and
// demos read the "phone" this way).
func Latest(dir string, k Kind, credID string) (Message, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Message{}, err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		b, err := os.ReadFile(filepath.Join(dir, entries[i].Name()))
		if err != nil {
			continue
		}
		var m Message
		if json.Unmarshal(b, &m) == nil && m.Kind == k && (credID == "" || m.CredentialID == credID) {
			return m, nil
		}
	}
	return Message{}, fmt.Errorf("no %s message for %q in %s", k, credID, dir)
}
