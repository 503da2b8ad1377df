package cscservice

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
)

func TestAuthMode(t *testing.T) {
	pin := csc.AuthObject{Type: csc.AuthPassword, ID: "PIN", Format: "N", Label: "PIN"}
	alpha := csc.AuthObject{Type: csc.AuthPassword, ID: "PWD", Format: "A", Label: "Password"}
	otp := csc.AuthObject{Type: csc.AuthPassword, ID: "OTP", Format: "N", Generator: "totp"}
	oob := csc.AuthObject{Type: csc.AuthPasswordOOB, ID: "OOB"}
	cr := csc.AuthObject{Type: csc.AuthChallengeResponseOOB, ID: "SMS"}
	explicit := func(expr string, objs ...csc.AuthObject) *csc.AuthInfo {
		return &csc.AuthInfo{Mode: csc.AuthModeExplicit, Expression: expr, Objects: objs}
	}
	tests := []struct {
		name   string
		in     *csc.AuthInfo
		mode   module.AuthMode
		pinID  string
		okExpr bool
	}{
		{"ok no auth object", nil, module.AuthPIN, "PIN", true},
		{"ok oauth2code", &csc.AuthInfo{Mode: "oauth2code"}, module.AuthBrowser, "", true},
		{"ok implicit", &csc.AuthInfo{Mode: "implicit"}, module.AuthNone, "", true},
		{"ok explicit no objects", explicit(""), module.AuthNone, "", true},
		{"ok explicit undescribed single factor", explicit("PIN"), module.AuthPIN, "PIN", true},
		{"ok PIN", explicit("PIN", pin), module.AuthPIN, "PIN", true},
		{"ok PIN without expression", explicit("", pin), module.AuthPIN, "PIN", true},
		{"ok alphanumeric password", explicit("PWD", alpha), module.AuthPIN, "PWD", true},
		{"ok PIN AND OOB polls", explicit("PIN AND OOB", pin, oob), module.AuthPIN, "PIN", true},
		{"ok OOB alone", explicit("OOB", oob), module.AuthNone, "", true},
		{"ok PIN OR OTP takes the PIN", explicit("PIN OR OTP", pin, otp), module.AuthPIN, "PIN", true},
		{"ok parenthesised", explicit("(PIN OR OTP) AND OOB", pin, otp, oob), module.AuthPIN, "PIN", true},
		{"ok PIN AND OTP needs the browser", explicit("PIN AND OTP", pin, otp), module.AuthBrowser, "", true},
		{"ok OTP only", explicit("OTP", otp), module.AuthBrowser, "", true},
		{"ok challenge-response", explicit("PIN AND SMS", pin, cr), module.AuthBrowser, "", true},
		{"ok two passwords", explicit("PIN AND PWD", pin, alpha), module.AuthBrowser, "", true},
		{"ok all objects required by default", explicit("", pin, otp), module.AuthBrowser, "", true},
		{"ok lower-case operators", explicit("PIN and OOB", pin, oob), module.AuthPIN, "PIN", true},
		{"fail unparsable with one PIN object", explicit("PIN AND (", pin), module.AuthPIN, "PIN", false},
		{"fail unparsable", explicit("PIN OTP", pin, otp), module.AuthBrowser, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := authMode(tc.in)
			if a.mode != tc.mode || a.pinID != tc.pinID || ok != tc.okExpr {
				t.Errorf("authMode = %v %q ok=%v, want %v %q ok=%v", a.mode, a.pinID, ok, tc.mode, tc.pinID, tc.okExpr)
			}
		})
	}
}

func TestSignAlgos(t *testing.T) {
	rsaAll := []string{csc.OIDRSA, csc.OIDSHA256WithRSA, csc.OIDSHA384WithRSA, csc.OIDSHA512WithRSA, csc.OIDRSAPSS}
	ecAll := []string{csc.OIDECDSAWithSHA256, csc.OIDECDSAWithSHA384, csc.OIDECDSAWithSHA512}
	service := append(slices.Clone(rsaAll), ecAll...)
	tests := []struct {
		name    string
		key     []string
		service []string
		fam     keyFamily
		want    []string
	}{
		{"ok no service list", rsaAll, nil, familyRSA, rsaAll},
		{"ok intersection", rsaAll, []string{csc.OIDSHA256WithRSA, csc.OIDECDSAWithSHA256}, familyRSA, []string{csc.OIDSHA256WithRSA}},
		{"ok key type only RSA", []string{csc.OIDRSA}, service, familyRSA, rsaAll},
		{"ok key type only EC", []string{csc.OIDECPublicKey}, service, familyEC, ecAll},
		{"ok empty key algo", nil, service, familyEC, ecAll},
		{"ok other family dropped", append([]string{csc.OIDECDSAWithSHA256}, csc.OIDSHA256WithRSA), service, familyEC, []string{csc.OIDECDSAWithSHA256}},
		{"ok empty intersection keeps key/algo", []string{csc.OIDSHA512WithRSA}, []string{csc.OIDSHA256WithRSA}, familyRSA, []string{csc.OIDSHA512WithRSA}},
		{"ok unknown family", ecAll, ecAll[:1], familyUnknown, ecAll[:1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := signAlgos(tc.key, tc.service, tc.fam); !slices.Equal(got, tc.want) {
				t.Errorf("signAlgos = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseExpr(t *testing.T) {
	tests := []struct {
		expr string
		have string // comma-separated IDs
		want bool
		err  bool
	}{
		{"PIN", "PIN", true, false},
		{"PIN", "", false, false},
		{"PIN AND OTP", "PIN", false, false},
		{"PIN OR OTP AND OOB", "PIN", true, false}, // AND binds tighter
		{"(PIN OR OTP) AND OOB", "PIN", false, false},
		{"((PIN))", "PIN", true, false},
		{"PIN AND", "", false, true},
		{"(PIN", "", false, true},
		{"PIN)", "", false, true},
		{"AND", "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			n, err := parseExpr(tc.expr)
			if (err != nil) != tc.err {
				t.Fatalf("parseExpr(%q) err = %v, want error %v", tc.expr, err, tc.err)
			}
			if err != nil {
				return
			}
			have := map[string]bool{}
			for _, id := range strings.Split(tc.have, ",") {
				if id != "" {
					have[id] = true
				}
			}
			if got := n.eval(have); got != tc.want {
				t.Errorf("eval(%q, %v) = %v, want %v", tc.expr, tc.have, got, tc.want)
			}
		})
	}
}

func TestMapErr(t *testing.T) {
	s := &Service{cfg: config.Service{Name: "My RSSP", URL: "https://rssp.example/csc/v2", Username: "alice"}}
	cerr := func(status int, code, desc string) error {
		return &cscclient.Error{Method: "m", StatusCode: status, Code: code, Description: desc}
	}
	tests := []struct {
		name      string
		in        error
		want      error
		remaining int // for ErrPINIncorrect; -2 to skip
		msg       string
	}{
		{"ok wrong PIN", cerr(400, "invalid_pin", "Wrong PIN: 2 attempts left"), module.ErrPINIncorrect, 2, ""},
		{"ok wrong OTP unknown count", cerr(400, "invalid_otp", "Wrong OTP"), module.ErrPINIncorrect, -1, ""},
		{"ok locked", cerr(400, "credential_locked", "locked"), module.ErrPINLocked, -2, ""},
		{"ok invalid PIN now locked", cerr(400, "invalid_pin", "the credential is now locked"), module.ErrPINLocked, -2, ""},
		{"ok SAD", cerr(400, "invalid_request", "Invalid parameter SAD"), module.ErrSADInvalid, -2, ""},
		{"ok SAD refused after a node failed", fmt.Errorf("%w: %w", cscclient.ErrOutcomeUnknown, cerr(400, "invalid_request", "Invalid parameter SAD")),
			module.ErrUnreachable, -2, "a node failed while it had the request"},
		{"ok login required", fmt.Errorf("x: %w", cscclient.ErrLoginRequired), module.ErrNotLoggedIn, -2, "csctoken login --service 'My RSSP'"},
		{"ok invalid token", cerr(401, "invalid_token", ""), module.ErrNotLoggedIn, -2, ""},
		{"ok expired token", cerr(401, "expired_token", ""), module.ErrNotLoggedIn, -2, ""},
		{"ok authentication", cerr(400, "authentication_error", ""), module.ErrNotLoggedIn, -2, ""},
		{"ok disabled", cerr(400, "credential_disabled", ""), module.ErrRejected, -2, ""},
		{"ok access denied", cerr(403, "access_denied", ""), module.ErrRejected, -2, ""},
		{"ok invalid request", cerr(400, "invalid_request", "hashAlgorithmOID not supported"), module.ErrRejected, -2, ""},
		{"ok server error", cerr(500, "", ""), module.ErrUnreachable, -2, ""},
		{"ok unavailable", cerr(503, "", ""), module.ErrUnreachable, -2, ""},
		{"ok rate limited", cerr(429, "", ""), module.ErrUnreachable, -2, ""},
		{"ok not found", cerr(404, "", ""), module.ErrUnreachable, -2, "is the URL right?"},
		{"ok deadline", context.DeadlineExceeded, module.ErrUnreachable, -2, ""},
		{"ok canceled stays", context.Canceled, context.Canceled, -2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.mapErr("op", tc.in)
			if !errors.Is(got, tc.want) {
				t.Fatalf("mapErr = %v, want %v", got, tc.want)
			}
			if !errors.Is(got, tc.in) {
				t.Errorf("mapErr = %v lost the cause %v", got, tc.in)
			}
			if tc.remaining != -2 {
				var pe *module.PINError
				if !errors.As(got, &pe) || pe.RemainingAttempts != tc.remaining {
					t.Errorf("PINError = %+v, want %d attempts left", pe, tc.remaining)
				}
			}
			if tc.msg != "" && !strings.Contains(got.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", got, tc.msg)
			}
		})
	}
}
