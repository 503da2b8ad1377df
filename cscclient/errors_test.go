package cscclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/csctoken/csctoken/csc"
)

func TestErrorIs(t *testing.T) {
	all := []error{ErrInvalidToken, ErrExpiredToken, ErrAuthentication, ErrWrongPIN, ErrCredentialLocked,
		ErrCredentialDisabled, ErrInvalidSAD, ErrAccessDenied, ErrRateLimited, ErrUnavailable, ErrServer,
		ErrNotSupported, ErrPending}
	tests := []struct {
		name   string
		status int
		code   string
		desc   string
		want   []error
	}{
		{"invalid token", 401, "invalid_token", "", []error{ErrInvalidToken}},
		{"expired token", 401, "expired_token", "", []error{ErrExpiredToken}},
		{"bare 401", 401, "", "", []error{ErrInvalidToken}},
		{"401 malformed header", 401, "invalid_request", "Malformed authorization header", []error{ErrInvalidToken}},
		{"v1 wrong PIN", 400, "invalid_pin", "", []error{ErrWrongPIN}},
		{"v1 wrong OTP", 400, "invalid_otp", "The OTP is wrong", []error{ErrWrongPIN}},
		{"v2 wrong auth data", 400, "invalid_authentication_data", "", []error{ErrWrongPIN}},
		{"invalid_request wrong PIN", 400, "invalid_request", "Invalid PIN", []error{ErrWrongPIN}},
		{"invalid_request PIN incorrect", 400, "invalid_request", "PIN incorrect, 2 tries left", []error{ErrWrongPIN}},
		{"invalid_request wrong OTP", 400, "invalid_request", "The OTP does not match", []error{ErrWrongPIN}},
		{"invalid_request missing PIN is not wrong", 400, "invalid_request", "Missing PIN", nil},
		{"invalid_request other parameter", 400, "invalid_request", "Invalid parameter hashes", nil},
		{"invalid_request spinning is not PIN", 400, "invalid_request", "invalid spinner", nil},
		{"locked code", 400, "credential_locked", "", []error{ErrCredentialLocked}},
		{"locked description", 400, "invalid_request", "Credential locked", []error{ErrCredentialLocked}},
		{"PIN blocked", 400, "invalid_pin", "PIN blocked", []error{ErrCredentialLocked}},
		{"disabled code", 400, "credential_disabled", "", []error{ErrCredentialDisabled}},
		{"disabled description", 400, "invalid_request", "The credential is disabled", []error{ErrCredentialDisabled}},
		{"SAD expired", 400, "invalid_request", "SAD expired", []error{ErrInvalidSAD}},
		{"hash not authorized by the SAD", 400, "invalid_request", "Hash is not authorized by the SAD", []error{ErrInvalidSAD}},
		{"access denied", 400, "access_denied", "", []error{ErrAccessDenied}},
		{"authentication error", 400, "authentication_error", "", []error{ErrAuthentication}},
		{"invalid grant", 400, "invalid_grant", "", []error{ErrAuthentication}},
		{"429", 429, "", "", []error{ErrRateLimited}},
		{"503", 503, "", "", []error{ErrUnavailable}},
		{"temporarily unavailable in a 400", 400, "temporarily_unavailable", "", []error{ErrUnavailable}},
		{"500", 500, "server_error", "", []error{ErrServer}},
		{"502", 502, "", "", []error{ErrServer}},
		{"501", 501, "", "", []error{ErrNotSupported}},
		{"accepted_request", 202, "accepted_request", "", []error{ErrPending}},
		{"plain 400", 400, "invalid_request", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error = &Error{Method: "m", StatusCode: tc.status, Code: tc.code, Description: tc.desc}
			err = wrapTwice(err)
			for _, k := range all {
				want := false
				for _, w := range tc.want {
					want = want || w == k
				}
				if got := errors.Is(err, k); got != want {
					t.Errorf("errors.Is(%v) = %v, want %v", k, got, want)
				}
			}
		})
	}
}

func wrapTwice(err error) error {
	return errors.Join(errors.New("outer"), errors.Join(err))
}

func TestExcerpt(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"ok short", "a\nb\x00c", "a b?c"},
		{"ok empty", "", ""},
		{"ok long cut on a rune", long, strings.Repeat("é", 256) + "…"},
		{"ok invalid UTF-8", "a\xffb", "a?b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := excerpt([]byte(tc.in))
			if got != tc.want {
				t.Fatalf("got %q", got)
			}
			if !utf8.ValidString(got) {
				t.Fatal("invalid UTF-8")
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{"0", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{"Thu, 01 Jan 1970 00:00:00 GMT", 0, true},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, %v", tc.in, got, ok)
		}
	}
	if d, ok := parseRetryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); !ok || d < 58*time.Minute {
		t.Errorf("HTTP date: %v %v", d, ok)
	}
}

// TestWaitAuthorization polls authorizeCheck until done, denied, timed out
// or cancelled.
func TestWaitAuthorization(t *testing.T) {
	tests := []struct {
		name    string
		answers []string // "202", "200", "denied"
		timeout time.Duration
		cancel  bool
		wantErr []error
		calls   int
	}{
		{name: "ok pending twice then done", answers: []string{"202", "202", "200"}, calls: 3},
		{name: "fail denied", answers: []string{"202", "denied"}, wantErr: []error{ErrAccessDenied}, calls: 2},
		{name: "fail timed out", answers: []string{"202"}, timeout: 60 * time.Millisecond,
			wantErr: []error{ErrTimeout, context.DeadlineExceeded}, calls: -1},
		{name: "fail cancelled", answers: []string{"202"}, cancel: true,
			wantErr: []error{context.Canceled}, calls: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				i := int(n.Add(1)) - 1
				a := tc.answers[min(i, len(tc.answers)-1)]
				w.Header().Set("Content-Type", "application/json")
				switch a {
				case "202":
					w.WriteHeader(202)
					io.WriteString(w, `{"handle":"h"}`)
				case "200":
					io.WriteString(w, `{"SAD":"S","expiresIn":60}`)
				case "denied":
					w.WriteHeader(400)
					io.WriteString(w, `{"error":"access_denied","error_description":"declined on the phone"}`)
				}
			}))
			t.Cleanup(srv.Close)
			c := mustClient(t, srv.URL+"/csc/v2", WithTokenSource(StaticToken("AT")))
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			if tc.cancel {
				time.AfterFunc(60*time.Millisecond, cancel)
			}
			start := time.Now()
			res, err := c.WaitAuthorization(ctx, "h", PollOptions{Interval: 5 * time.Millisecond,
				MaxInterval: 10 * time.Millisecond, Timeout: tc.timeout})
			if time.Since(start) > 5*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
			if tc.wantErr == nil {
				if err != nil || res.SAD != "S" {
					t.Fatalf("res %+v, err %v", res, err)
				}
			}
			for _, k := range tc.wantErr {
				if !errors.Is(err, k) {
					t.Errorf("err %v is not %v", err, k)
				}
			}
			if tc.calls >= 0 && int(n.Load()) != tc.calls {
				t.Errorf("%d calls, want %d", n.Load(), tc.calls)
			}
		})
	}
}

func TestRemainingAttempts(t *testing.T) {
	tests := []struct {
		desc string
		want int
	}{
		{"Wrong PIN: 2 attempts left", 2},
		{"Invalid PIN, 1 try remaining", 1},
		{"PIN incorrect (retries left: 3)", 3},
		{"Wrong PIN", -1},
		{"", -1},
	}
	for _, tc := range tests {
		e := &Error{Code: csc.ErrInvalidPIN, Description: tc.desc}
		if got := e.RemainingAttempts(); got != tc.want {
			t.Errorf("%q: %d, want %d", tc.desc, got, tc.want)
		}
	}
}

// TestErrorMessage shows what a user reads.
func TestErrorMessage(t *testing.T) {
	e := &Error{Method: "credentials/authorize", StatusCode: 400, Code: csc.ErrInvalidRequest, Description: "Invalid PIN"}
	if got, want := e.Error(), "csc credentials/authorize: HTTP 400: invalid_request: Invalid PIN"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e = &Error{Method: "info", StatusCode: 502, Body: "<html>Bad Gateway</html>"}
	if got := e.Error(); !strings.Contains(got, "Bad Gateway") {
		t.Errorf("got %q", got)
	}
}
