package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/keystore"
)

// hinted is a keystore error with a retry hint, as the PKCS#11 backend
// returns while it re-opens its token.
type hinted struct{ d time.Duration }

func (h hinted) Error() string             { return "token gone: CKR_GENERAL_ERROR, PIN 123456 never here" }
func (h hinted) Unwrap() error             { return keystore.ErrUnavailable }
func (h hinted) RetryAfter() time.Duration { return h.d }

// The key store's failures are 503 with Retry-After and a CSC body that
// says what happened, never the backend's own message; a missing key
// stays an internal error.
func TestKeystoreErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		retryAfter string
		desc       string
	}{
		{"unavailable with a hint", fmt.Errorf("sign hash 0 with credential c1: %w", hinted{2500 * time.Millisecond}),
			http.StatusServiceUnavailable, "3", "HSM) is unavailable"},
		{"unavailable without a hint", fmt.Errorf("sign: %w", keystore.ErrUnavailable),
			http.StatusServiceUnavailable, "1", "HSM) is unavailable"},
		{"busy", fmt.Errorf("p11: no free PKCS#11 session: %w after 30s", keystore.ErrBusy),
			http.StatusServiceUnavailable, "1", "HSM) is busy"},
		{"key not found", fmt.Errorf("sign: %w", keystore.ErrKeyNotFound),
			http.StatusInternalServerError, "", "Internal error"},
	}
	s := &Server{log: slog.New(slog.DiscardHandler)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.writeError(w, httptest.NewRequest(http.MethodPost, "/csc/v2/signatures/signHash", nil), tt.err)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			if got := w.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			var e csc.Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatalf("body %s: %v", w.Body, err)
			}
			if tt.status == http.StatusServiceUnavailable && e.Code != csc.ErrTemporarilyUnavailable {
				t.Errorf("error %q, want %s", e.Code, csc.ErrTemporarilyUnavailable)
			}
			if !strings.Contains(e.Description, tt.desc) {
				t.Errorf("description %q, want it to contain %q", e.Description, tt.desc)
			}
			if strings.Contains(w.Body.String(), "123456") || strings.Contains(w.Body.String(), "CKR_") {
				t.Errorf("the body shows the backend's message: %s", w.Body)
			}
		})
	}
	if !errors.Is(tests[0].err, keystore.ErrUnavailable) {
		t.Fatal("test error does not wrap ErrUnavailable")
	}
}
