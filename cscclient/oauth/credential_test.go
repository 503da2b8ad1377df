package oauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/oauth"
)

func digest(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TestCredentialRequest checks the two forms of a credential request
// (docs/mapping.md, "CSC notes") as the server receives them, and the requests
// refused before anything is sent.
func TestCredentialRequest(t *testing.T) {
	h1, h2 := digest("one"), digest("two")
	tests := []struct {
		name    string
		req     oauth.CredentialRequest
		want    url.Values // expected parameters ("" : absent)
		details string     // expected authorization_details (JSON)
		wantErr bool
	}{
		{name: "ok scope parameters with hashes",
			req: oauth.CredentialRequest{CredentialID: "c1", Hashes: [][]byte{h1, h2}, HashAlgorithmOID: csc.OIDSHA256, Description: "Two invoices"},
			want: url.Values{"scope": {"credential"}, "credentialID": {"c1"}, "numSignatures": {"2"},
				"hashes":           {base64.RawURLEncoding.EncodeToString(h1) + "," + base64.RawURLEncoding.EncodeToString(h2)},
				"hashAlgorithmOID": {csc.OIDSHA256}, "description": {"Two invoices"}, "authorization_details": {""}}},
		{name: "ok scope parameters without hashes",
			req:  oauth.CredentialRequest{CredentialID: "c1", NumSignatures: 3},
			want: url.Values{"scope": {"credential"}, "credentialID": {"c1"}, "numSignatures": {"3"}, "hashes": {""}, "hashAlgorithmOID": {""}}},
		{name: "ok one signature by default",
			req:  oauth.CredentialRequest{CredentialID: "c1"},
			want: url.Values{"numSignatures": {"1"}}},
		{name: "ok labels: authorization_details",
			req: oauth.CredentialRequest{CredentialID: "c1", Hashes: [][]byte{h1, h2}, HashAlgorithmOID: csc.OIDSHA256,
				Labels: []string{"Invoice 1.pdf", ""}, Description: "Invoices"},
			want: url.Values{"scope": {""}, "credentialID": {""}, "hashes": {""}, "numSignatures": {""}, "description": {"Invoices"}},
			details: fmt.Sprintf(`[{"type":"credential","credentialID":"c1","documentDigests":[{"hash":%q,"label":"Invoice 1.pdf"},{"hash":%q}],"hashAlgorithmOID":%q}]`,
				base64.StdEncoding.EncodeToString(h1), base64.StdEncoding.EncodeToString(h2), csc.OIDSHA256)},
		{name: "fail no credential", req: oauth.CredentialRequest{Hashes: [][]byte{h1}, HashAlgorithmOID: csc.OIDSHA256}, wantErr: true},
		{name: "fail hashes without algorithm", req: oauth.CredentialRequest{CredentialID: "c1", Hashes: [][]byte{h1}}, wantErr: true},
		{name: "fail count mismatch", req: oauth.CredentialRequest{CredentialID: "c1", NumSignatures: 2, Hashes: [][]byte{h1},
			HashAlgorithmOID: csc.OIDSHA256}, wantErr: true},
		{name: "fail labels without hashes", req: oauth.CredentialRequest{CredentialID: "c1", Labels: []string{"a"}}, wantErr: true},
		{name: "fail a label short", req: oauth.CredentialRequest{CredentialID: "c1", Hashes: [][]byte{h1, h2},
			HashAlgorithmOID: csc.OIDSHA256, Labels: []string{"a"}}, wantErr: true},
		{name: "fail empty hash", req: oauth.CredentialRequest{CredentialID: "c1", Hashes: [][]byte{{}}, HashAlgorithmOID: csc.OIDSHA256}, wantErr: true},
		{name: "fail negative count", req: oauth.CredentialRequest{CredentialID: "c1", NumSignatures: -1}, wantErr: true},
		{name: "fail long description", req: oauth.CredentialRequest{CredentialID: "c1", Description: strings.Repeat("x", 501)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			as.set(func(as *fakeAS) {
				as.token = func(url.Values) (int, any) {
					return 200, map[string]any{"access_token": "cred-token", "token_type": "Bearer", "expires_in": 300,
						"credentialID": "c1", "authorization_details": json.RawMessage(`[{"type":"credential"}]`)}
				}
			})
			oc := newTestClient(t, as, oauth.Config{Opener: newHTTPBrowser(), Lang: "en"})
			tok, err := oc.AuthorizeCredential(context.Background(), tt.req)
			if tt.wantErr {
				if !errors.Is(err, cscclient.ErrInvalidArgument) {
					t.Fatalf("err = %v, want ErrInvalidArgument", err)
				}
				if n := as.snapshot().requests; n != 0 {
					t.Fatalf("%d requests for a refused credential request", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "cred-token" || tok.CredentialID != "c1" || tok.Expiry.IsZero() ||
				string(tok.AuthorizationDetails) != `[{"type":"credential"}]` {
				t.Fatalf("token %#v %s", tok, tok.AuthorizationDetails)
			}
			if s := fmt.Sprint(tok) + fmt.Sprintf("%#v", tok); strings.Contains(s, "cred-token") {
				t.Fatalf("the token shows in %s", s)
			}
			q := as.snapshot().pushed[0]
			for k, v := range tt.want {
				if q.Get(k) != v[0] {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v[0])
				}
			}
			if q.Get("lang") != "en" {
				t.Errorf("lang = %q", q.Get("lang"))
			}
			if q.Get("authorization_details") != tt.details {
				t.Errorf("authorization_details:\n got %s\nwant %s", q.Get("authorization_details"), tt.details)
			}
		})
	}
}

// TestCredentialTokenChecks: the token must be for the credential asked.
func TestCredentialTokenChecks(t *testing.T) {
	tests := []struct {
		name    string
		body    map[string]any
		wantErr error
	}{
		{"ok Bearer", map[string]any{"access_token": "t", "token_type": "bearer", "credentialID": "c1"}, nil},
		{"ok no credentialID echoed", map[string]any{"access_token": "t", "token_type": "Bearer"}, nil},
		{"fail other credential", map[string]any{"access_token": "t", "token_type": "Bearer", "credentialID": "c2"}, cscclient.ErrBadResponse},
		{"fail no access token", map[string]any{"token_type": "Bearer"}, cscclient.ErrBadResponse},
		{"fail error in a 200", map[string]any{"error": "invalid_grant"}, cscclient.ErrAuthentication},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			as.set(func(as *fakeAS) { as.token = func(url.Values) (int, any) { return 200, tt.body } })
			oc := newTestClient(t, as, oauth.Config{Opener: newHTTPBrowser()})
			tok, err := oc.AuthorizeCredential(context.Background(), oauth.CredentialRequest{CredentialID: "c1"})
			if tt.wantErr == nil {
				if err != nil || tok.AccessToken != "t" {
					t.Fatalf("%v %v", tok, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestErrorKinds checks what errors.Is says of OAuth2 errors.
func TestErrorKinds(t *testing.T) {
	tests := []struct {
		name string
		err  *oauth.Error
		is   []error
		not  []error
	}{
		{"access_denied", &oauth.Error{Endpoint: oauth.EndpointAuthorize, Code: "access_denied"},
			[]error{cscclient.ErrAccessDenied}, []error{cscclient.ErrAuthentication, cscclient.ErrTransport}},
		{"invalid_grant", &oauth.Error{Endpoint: oauth.EndpointToken, StatusCode: 400, Code: "invalid_grant"},
			[]error{cscclient.ErrAuthentication}, []error{cscclient.ErrAccessDenied}},
		{"invalid_client 401", &oauth.Error{Endpoint: oauth.EndpointToken, StatusCode: 401, Code: "invalid_client"},
			[]error{cscclient.ErrAuthentication}, nil},
		{"unauthorized_client", &oauth.Error{Code: "unauthorized_client"}, []error{cscclient.ErrAuthentication}, nil},
		{"temporarily_unavailable", &oauth.Error{Code: "temporarily_unavailable"}, []error{cscclient.ErrUnavailable}, nil},
		{"server_error", &oauth.Error{Code: "server_error", StatusCode: 500}, []error{cscclient.ErrServer}, nil},
		{"503 without code", &oauth.Error{StatusCode: 503}, []error{cscclient.ErrUnavailable}, []error{cscclient.ErrServer}},
		{"429", &oauth.Error{StatusCode: 429}, []error{cscclient.ErrRateLimited}, nil},
		{"no answer", &oauth.Error{Endpoint: oauth.EndpointToken, Err: context.DeadlineExceeded},
			[]error{cscclient.ErrTransport, cscclient.ErrTimeout, context.DeadlineExceeded}, []error{cscclient.ErrAuthentication}},
		{"invalid_scope", &oauth.Error{Code: "invalid_scope"}, nil, []error{cscclient.ErrAccessDenied, cscclient.ErrAuthentication}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range tt.is {
				if !errors.Is(tt.err, k) {
					t.Errorf("errors.Is(%v, %v) = false", tt.err, k)
				}
			}
			for _, k := range tt.not {
				if errors.Is(tt.err, k) {
					t.Errorf("errors.Is(%v, %v) = true", tt.err, k)
				}
			}
		})
	}
	e := &oauth.Error{Endpoint: "token", StatusCode: 400, Code: "invalid_grant", Description: "Invalid refresh token"}
	if got := e.Error(); got != "oauth token: HTTP 400: invalid_grant: Invalid refresh token" {
		t.Errorf("Error() = %q", got)
	}
}
