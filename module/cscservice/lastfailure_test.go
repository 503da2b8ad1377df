package cscservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
)

// TestLastFailure: mapErr keeps each failure with what to do; a
// cancellation is none.
func TestLastFailure(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	sc := config.Service{Name: "Work RSSP", URL: "https://rssp.example/csc/v2", Username: "alice"}
	s := &Service{cfg: sc, log: slog.New(slog.DiscardHandler)}
	if f, err := ReadLastFailure(sc); f != nil || err != nil {
		t.Fatalf("before any failure: %v, %v", f, err)
	}
	tests := []struct {
		name      string
		err       error
		wantClass string
		wantToDo  string
	}{
		{"ok unreachable", fmt.Errorf("dial: %w", cscclient.ErrTransport), "unreachable", "https://rssp.example/csc/v2 could not be reached"},
		{"ok not logged in", cscclient.ErrLoginRequired, "not_logged_in", "csctoken login --service 'Work RSSP'"},
		{"ok locked", cscclient.ErrCredentialLocked, "pin_locked", "ask your administrator"},
		{"ok wrong PIN", cscclient.ErrWrongPIN, "wrong_pin", "a wrong PIN"},
		{"ok refused", cscclient.ErrCredentialDisabled, "rejected", "refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mapped := s.mapErr("signatures/signHash", tc.err)
			f, err := ReadLastFailure(sc)
			if err != nil || f == nil {
				t.Fatalf("ReadLastFailure: %v, %v", f, err)
			}
			if f.Class != tc.wantClass || !strings.Contains(f.ToDo, tc.wantToDo) || f.What != mapped.Error() || f.Time.IsZero() {
				t.Errorf("recorded %+v", f)
			}
		})
	}
	before, _ := ReadLastFailure(sc)
	s.mapErr("signatures/signHash", context.Canceled)
	if after, _ := ReadLastFailure(sc); after == nil || *after != *before {
		t.Errorf("a cancellation was recorded: %+v", after)
	}
	other := config.Service{Name: "Other", URL: "https://other.example/csc/v2", Username: "alice"}
	if f, _ := ReadLastFailure(other); f != nil {
		t.Errorf("another service has a failure: %+v", f)
	}
	if !errors.Is(s.mapErr("x", cscclient.ErrCredentialLocked), module.ErrPINLocked) {
		t.Error("recording changed the mapping")
	}
}
