package cscclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/csc"
)

// A hash whose standard base64 has '+' and '/' and padding, so that the
// alphabet sent is visible.
var testHash = bytes.Repeat([]byte{0xfb, 0xff}, 16)

var (
	stdHash = base64.StdEncoding.EncodeToString(testHash)    // "+/+/…="
	urlSig  = base64.RawURLEncoding.EncodeToString(testHash) // "-_-_…" (lenient in)
)

func ecdsaFixture(t *testing.T) (der, raw []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err = ecdsa.SignASN1(rand.Reader, k, testHash)
	if err != nil {
		t.Fatal(err)
	}
	raw, err = ECDSAToRaw(der, 32)
	if err != nil {
		t.Fatal(err)
	}
	return der, raw
}

// TestMethods runs every method against a fake server in both wire versions
// and checks what goes out (exact keys, base64 alphabet, authentication)
// and what comes back.
func TestMethods(t *testing.T) {
	der, raw := ecdsaFixture(t)
	sendsStdHashes := func(t *testing.T, _ *http.Request, body []byte) {
		if !strings.Contains(string(body), stdHash) {
			t.Errorf("request does not carry the hash in padded standard base64: %s", body)
		}
	}
	type row struct {
		name string
		v    Version
		ex   map[string]exchange
		call func(ctx context.Context, c *Client) (any, error)
		want func(t *testing.T, out any)
		// wantErr, when set, is the kind of error expected.
		wantErr error
	}
	rows := []row{
		{
			name: "ok info v2 (tls in lower case)", v: V2,
			ex: map[string]exchange{"info": {wantKeys: []string{}, wantAuth: "none",
				body: `{"specs":"2.0.0.2","name":"x","logo":"","region":"IT","lang":"en","description":"d","authType":["tls","Basic"],"methods":["credentials/list"],"signAlgorithms":{"algos":["1.2.840.10045.4.3.2"]}}`}},
			call: func(ctx context.Context, c *Client) (any, error) { return c.Info(ctx, nil) },
			want: func(t *testing.T, out any) {
				i := out.(*csc.InfoResponse)
				if !slices.Equal(i.AuthType, []string{"TLS", "basic"}) || i.SignAlgorithms == nil {
					t.Errorf("info = %+v", i)
				}
			},
		},
		{
			name: "ok info v1 (sendOTP becomes getChallenge)", v: V1,
			ex: map[string]exchange{"info": {wantKeys: []string{"lang"}, wantAuth: "none",
				body: `{"specs":"1.0.4.0","name":"x","logo":"","region":"IT","lang":"en","description":"d","authType":["basic"],"methods":["credentials/sendOTP","signatures/signHash"]}`}},
			call: func(ctx context.Context, c *Client) (any, error) { return c.Info(ctx, &csc.InfoRequest{Lang: "en"}) },
			want: func(t *testing.T, out any) {
				i := out.(*csc.InfoResponse)
				if !slices.Contains(i.Methods, csc.MethodGetChallenge) || i.Specs != "1.0.4.0" {
					t.Errorf("info = %+v", i)
				}
			},
		},
		{
			name: "ok login basic v2", v: V2,
			ex: map[string]exchange{"auth/login": {wantKeys: []string{"rememberMe"}, wantAuth: "basic",
				check: func(t *testing.T, r *http.Request, _ []byte) {
					if u, p, _ := r.BasicAuth(); u != "alice" || p != "pw" {
						t.Errorf("basic auth %q %q", u, p)
					}
				},
				body: `{"access_token":"AT","refresh_token":"RT","expires_in":60}`}},
			call: func(ctx context.Context, c *Client) (any, error) { return c.LoginToken(ctx, "alice", "pw", true) },
			want: func(t *testing.T, out any) {
				tok := out.(*Token)
				if tok.AccessToken != "AT" || tok.RefreshToken != "RT" || !tok.Valid(0) {
					t.Errorf("token = %+v", *tok)
				}
			},
		},
		{
			name: "ok login refresh v1 (no Basic)", v: V1,
			ex: map[string]exchange{"auth/login": {wantKeys: []string{"refresh_token", "rememberMe"}, wantAuth: "none",
				body: `{"access_token":"AT2"}`}},
			call: func(ctx context.Context, c *Client) (any, error) { return c.RefreshToken(ctx, "RT") },
			want: func(t *testing.T, out any) {
				if tok := out.(*Token); tok.AccessToken != "AT2" || tok.Expiry.IsZero() {
					t.Errorf("token = %+v", *tok)
				}
			},
		},
		{
			name: "fail login wrong password", v: V2,
			ex: map[string]exchange{"auth/login": {status: 400,
				body: `{"error":"authentication_error","error_description":"bad credentials"}`}},
			call:    func(ctx context.Context, c *Client) (any, error) { return c.LoginToken(ctx, "alice", "bad", false) },
			wantErr: ErrAuthentication,
		},
		{
			name: "ok revoke v2 (204)", v: V2,
			ex: map[string]exchange{"auth/revoke": {wantKeys: []string{"token", "token_type_hint"}, wantAuth: "bearer",
				status: 204, ctype: "text/plain"}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.Revoke(ctx, &csc.RevokeRequest{Token: "RT", TokenTypeHint: "refresh_token"})
			},
		},
		{
			name: "ok revoke v1 (200, empty)", v: V1,
			ex: map[string]exchange{"auth/revoke": {wantKeys: []string{"token"}, wantAuth: "bearer"}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.Revoke(ctx, &csc.RevokeRequest{Token: "AT"})
			},
		},
		{
			name: "ok list v2 (SCAL as a number, url-safe certificates)", v: V2,
			ex: map[string]exchange{"credentials/list": {
				wantKeys: []string{"credentialInfo", "certificates", "certInfo", "authInfo"}, wantAuth: "bearer",
				body: `{"credentialIDs":["c1"],"credentialInfos":[{"credentialID":"c1","key":{"status":"ENABLED","algo":["1.2.840.10045.2.1"],"len":256,"curve":"1.2.840.10045.3.1.7"},"cert":{"certificates":["` + urlSig + `"]},"auth":{"mode":"explicit","objects":[{"type":"Password","id":"PIN","format":"N"}]},"SCAL":2,"multisign":1}]}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ListCredentials(ctx, &csc.CredentialsListRequest{CredentialInfo: true,
					Certificates: csc.CertsChain, CertInfo: true, AuthInfo: true, MaxResults: 10})
			},
			want: func(t *testing.T, out any) {
				l := out.(*csc.CredentialsListResponse)
				if len(l.CredentialInfos) != 1 {
					t.Fatalf("list = %+v", l)
				}
				ci := l.CredentialInfos[0]
				if ci.SCAL != "2" || ci.Key.Status != "enabled" || !bytes.Equal(ci.Cert.Certificates[0], testHash) {
					t.Errorf("info = %+v", ci)
				}
			},
		},
		{
			name: "ok list v1 (paging, infos fetched one by one)", v: V1,
			ex: map[string]exchange{
				"credentials/list": {wantKeys: []string{"maxResults"}, wantAuth: "bearer",
					body: `{"credentialIDs":["c1"],"nextPageToken":"p2"}`},
				"credentials/info": {wantKeys: []string{"credentialID", "certificates", "certInfo", "authInfo"}, wantAuth: "bearer",
					body: `{"key":{"status":"enabled","algo":["1.2.840.113549.1.1.1"],"len":2048},"authMode":"explicit","PIN":{"presence":"true","format":"N"},"OTP":{"presence":"false"},"multisign":1}`},
			},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ListCredentials(ctx, &csc.CredentialsListRequest{CredentialInfo: true,
					Certificates: csc.CertsChain, CertInfo: true, AuthInfo: true, MaxResults: 10})
			},
			want: func(t *testing.T, out any) {
				l := out.(*csc.CredentialsListResponse)
				if l.NextPageToken != "p2" || len(l.CredentialInfos) != 1 || l.CredentialInfos[0].Auth == nil ||
					l.CredentialInfos[0].Auth.Objects[0].ID != csc.V1PINID {
					t.Errorf("list = %+v", l)
				}
			},
		},
		{
			name: "ok credentials/info v2 without auth", v: V2,
			ex: map[string]exchange{"credentials/info": {wantKeys: []string{"credentialID", "certificates"}, wantAuth: "bearer",
				body: `{"key":{"status":"enabled","algo":["1.2.840.113549.1.1.1"],"len":2048},"multisign":5}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CredentialInfo(ctx, &csc.CredentialsInfoRequest{CredentialID: "c1", Certificates: csc.CertsSingle})
			},
			want: func(t *testing.T, out any) {
				ci := out.(*csc.CredentialInfo)
				if ci.Auth != nil || ci.CredentialID != "c1" || ci.Multisign != 5 {
					t.Errorf("info = %+v", ci)
				}
			},
		},
		{
			name: "ok credentials/info v1 (PIN and online OTP)", v: V1,
			ex: map[string]exchange{"credentials/info": {wantKeys: []string{"credentialID"}, wantAuth: "bearer",
				body: `{"key":{"status":"enabled","algo":["1.2.840.113549.1.1.1"],"len":2048},"authMode":"explicit","PIN":{"presence":true,"format":"N","label":"PIN"},"OTP":{"presence":"true","type":"online","ID":"dev1","provider":"sms"},"SCAL":"2","multisign":1}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CredentialInfo(ctx, &csc.CredentialsInfoRequest{CredentialID: "c1"})
			},
			want: func(t *testing.T, out any) {
				ci := out.(*csc.CredentialInfo)
				if ci.Auth == nil || ci.Auth.Mode != csc.AuthModeExplicit || len(ci.Auth.Objects) != 2 ||
					ci.Auth.Objects[1].Type != csc.AuthChallengeResponse || ci.SCAL != "2" {
					t.Errorf("info = %+v auth %+v", ci, ci.Auth)
				}
			},
		},
		{
			name: "ok authorize v2", v: V2,
			ex: map[string]exchange{"credentials/authorize": {
				wantKeys: []string{"credentialID", "numSignatures", "hashes", "hashAlgorithmOID", "authData"}, wantAuth: "bearer",
				check: sendsStdHashes, body: `{"SAD":"S1","expiresIn":300}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1,
					Hashes: []csc.Bytes{testHash}, HashAlgorithmOID: csc.OIDSHA256,
					AuthData: []csc.AuthData{{ID: "PIN", Value: "1234"}}})
			},
			want: func(t *testing.T, out any) {
				if a := out.(*csc.AuthorizeResponse); a.SAD != "S1" || a.ExpiresIn != 300 {
					t.Errorf("authorize = %+v", a)
				}
			},
		},
		{
			name: "ok authorize v1 (hash, PIN, OTP)", v: V1,
			ex: map[string]exchange{"credentials/authorize": {
				wantKeys: []string{"credentialID", "numSignatures", "hash", "PIN", "OTP"}, wantAuth: "bearer",
				check: func(t *testing.T, r *http.Request, b []byte) {
					sendsStdHashes(t, r, b)
					if !strings.Contains(string(b), `"PIN":"1234"`) || !strings.Contains(string(b), `"OTP":"999"`) {
						t.Errorf("body %s", b)
					}
				},
				body: `{"SAD":"S1"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1,
					Hashes: []csc.Bytes{testHash}, HashAlgorithmOID: csc.OIDSHA256,
					AuthData: []csc.AuthData{{ID: "PIN", Value: "1234"}, {ID: "OTP", Value: "999"}}})
			},
			want: func(t *testing.T, out any) {
				if a := out.(*csc.AuthorizeResponse); a.SAD != "S1" {
					t.Errorf("authorize = %+v", a)
				}
			},
		},
		{
			name: "ok authorize v2 out of band (202)", v: V2,
			ex: map[string]exchange{"credentials/authorize": {status: 202, body: `{"handle":"h1"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1})
			},
			want: func(t *testing.T, out any) {
				if a := out.(*csc.AuthorizeResponse); a.Handle != "h1" || a.SAD != "" {
					t.Errorf("authorize = %+v", a)
				}
			},
		},
		{
			name: "fail authorize wrong PIN", v: V2,
			ex: map[string]exchange{"credentials/authorize": {status: 400,
				body: `{"error":"invalid_request","error_description":"The PIN is invalid"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1})
			},
			wantErr: ErrWrongPIN,
		},
		{
			name: "fail authorize locked (v1)", v: V1,
			ex: map[string]exchange{"credentials/authorize": {status: 400,
				body: `{"error":"invalid_request","error_description":"Credential locked"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1})
			},
			wantErr: ErrCredentialLocked,
		},
		{
			name: "fail authorize v1 with an OOB factor", v: V1,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1,
					AuthData: []csc.AuthData{{ID: "push"}}})
			},
			wantErr: ErrInvalidArgument,
		},
		{
			name: "ok authorizeCheck v2", v: V2,
			ex: map[string]exchange{"credentials/authorizeCheck": {wantKeys: []string{"handle"}, wantAuth: "bearer",
				body: `{"SAD":"S2"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AuthorizeCheck(ctx, &csc.AuthorizeCheckRequest{Handle: "h1"})
			},
			want: func(t *testing.T, out any) {
				if a := out.(*csc.AuthorizeResponse); a.SAD != "S2" {
					t.Errorf("check = %+v", a)
				}
			},
		},
		{
			name: "fail authorizeCheck v2 pending", v: V2,
			ex: map[string]exchange{"credentials/authorizeCheck": {status: 202, body: `{"handle":"h1"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AuthorizeCheck(ctx, &csc.AuthorizeCheckRequest{Handle: "h1"})
			},
			wantErr: ErrPending,
		},
		{
			name: "fail authorizeCheck v1 (no such method)", v: V1,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AuthorizeCheck(ctx, &csc.AuthorizeCheckRequest{Handle: "h1"})
			},
			wantErr: ErrNotSupported,
		},
		{
			name: "ok getChallenge v2", v: V2,
			ex: map[string]exchange{"credentials/getChallenge": {wantKeys: []string{"credentialID", "authObjectID"},
				wantAuth: "bearer", body: `{"challenge":"ch"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GetChallenge(ctx, &csc.GetChallengeRequest{CredentialID: "c1", AuthObjectID: "OTP"})
			},
			want: func(t *testing.T, out any) {
				if g := out.(*csc.GetChallengeResponse); g.Challenge != "ch" {
					t.Errorf("challenge = %+v", g)
				}
			},
		},
		{
			name: "ok getChallenge v2 out of band (201, no body)", v: V2,
			ex: map[string]exchange{"credentials/getChallenge": {status: 201, ctype: "text/plain"}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GetChallenge(ctx, &csc.GetChallengeRequest{CredentialID: "c1", AuthObjectID: "OTP"})
			},
		},
		{
			name: "ok getChallenge v1 is sendOTP (204)", v: V1,
			ex: map[string]exchange{"credentials/sendOTP": {wantKeys: []string{"credentialID"}, wantAuth: "bearer",
				status: 204}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GetChallenge(ctx, &csc.GetChallengeRequest{CredentialID: "c1", AuthObjectID: "OTP"})
			},
		},
		{
			name: "ok extendTransaction v2", v: V2,
			ex: map[string]exchange{"credentials/extendTransaction": {
				wantKeys: []string{"credentialID", "hashes", "hashAlgorithmOID", "SAD"}, wantAuth: "bearer",
				check: sendsStdHashes, body: `{"SAD":"S3"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ExtendTransaction(ctx, &csc.ExtendTransactionRequest{CredentialID: "c1", SAD: "S1",
					Hashes: []csc.Bytes{testHash}, HashAlgorithmOID: csc.OIDSHA256})
			},
			want: func(t *testing.T, out any) {
				if a := out.(*csc.AuthorizeResponse); a.SAD != "S3" {
					t.Errorf("extend = %+v", a)
				}
			},
		},
		{
			name: "ok extendTransaction v1", v: V1,
			ex: map[string]exchange{"credentials/extendTransaction": {
				wantKeys: []string{"credentialID", "hash", "SAD"}, check: sendsStdHashes, body: `{"SAD":"S3"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ExtendTransaction(ctx, &csc.ExtendTransactionRequest{CredentialID: "c1", SAD: "S1",
					Hashes: []csc.Bytes{testHash}, HashAlgorithmOID: csc.OIDSHA256})
			},
		},
		{
			name: "ok signHash v2 RSA (url-safe signatures accepted)", v: V2,
			ex: map[string]exchange{"signatures/signHash": {
				wantKeys: []string{"credentialID", "SAD", "hashes", "hashAlgorithmOID", "signAlgo"}, wantAuth: "bearer",
				check: sendsStdHashes, body: `{"signatures":["` + urlSig + `"]}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c1", SAD: "S1", Hashes: []csc.Bytes{testHash},
					HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDRSA})
			},
			want: func(t *testing.T, out any) {
				if s := out.(*csc.SignHashResponse); !bytes.Equal(s.Signatures[0], testHash) {
					t.Errorf("signatures = %x", s.Signatures)
				}
			},
		},
		{
			name: "ok signHash v1 RSA (hash, hashAlgo)", v: V1,
			ex: map[string]exchange{"signatures/signHash": {
				wantKeys: []string{"credentialID", "SAD", "hash", "hashAlgo", "signAlgo"}, wantAuth: "bearer",
				check: sendsStdHashes, body: `{"signatures":["` + stdHash + `"]}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c1", SAD: "S1", Hashes: []csc.Bytes{testHash},
					HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDRSA})
			},
		},
		{
			name: "ok signHash v2 ECDSA raw r||s becomes DER", v: V2,
			ex: map[string]exchange{"signatures/signHash": {
				body: `{"signatures":["` + base64.StdEncoding.EncodeToString(raw) + `"]}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c1", SAD: "S1", Hashes: []csc.Bytes{testHash},
					SignAlgo: csc.OIDECDSAWithSHA256})
			},
			want: func(t *testing.T, out any) {
				if s := out.(*csc.SignHashResponse); !bytes.Equal(s.Signatures[0], der) {
					t.Errorf("signature %x, want DER %x", s.Signatures[0], der)
				}
			},
		},
		{
			name: "ok signHash v1 ECDSA DER stays DER", v: V1,
			ex: map[string]exchange{"signatures/signHash": {
				body: `{"signatures":["` + base64.StdEncoding.EncodeToString(der) + `"]}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c1", SAD: "S1", Hashes: []csc.Bytes{testHash},
					SignAlgo: csc.OIDECDSAWithSHA256})
			},
			want: func(t *testing.T, out any) {
				if s := out.(*csc.SignHashResponse); !bytes.Equal(s.Signatures[0], der) {
					t.Errorf("signature %x, want DER %x", s.Signatures[0], der)
				}
			},
		},
		{
			name: "fail signHash v1 without SAD", v: V1,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c1", Hashes: []csc.Bytes{testHash},
					SignAlgo: csc.OIDECDSAWithSHA256})
			},
			wantErr: ErrInvalidArgument,
		},
		{
			name: "ok signHash v2 async", v: V2,
			ex: map[string]exchange{"signatures/signHash": {
				wantKeys: []string{"credentialID", "SAD", "hashes", "signAlgo", "operationMode"},
				body:     `{"responseID":"r1"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c1", SAD: "S1", Hashes: []csc.Bytes{testHash},
					SignAlgo: csc.OIDSHA256WithRSA, OperationMode: csc.OperationAsync})
			},
			want: func(t *testing.T, out any) {
				if s := out.(*csc.SignHashResponse); s.ResponseID != "r1" {
					t.Errorf("signHash = %+v", s)
				}
			},
		},
		{
			name: "ok signPolling v2", v: V2,
			ex: map[string]exchange{"signatures/signPolling": {wantKeys: []string{"requestID"}, wantAuth: "bearer",
				body: `{"signatures":["` + stdHash + `"]}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SignPolling(ctx, &csc.SignPollingRequest{RequestID: "r1"}, csc.OIDSHA256WithRSA)
			},
		},
		{
			name: "fail signPolling v2 pending", v: V2,
			ex: map[string]exchange{"signatures/signPolling": {status: 202,
				body: `{"error":"accepted_request"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SignPolling(ctx, &csc.SignPollingRequest{RequestID: "r1"}, "")
			},
			wantErr: ErrPending,
		},
		{
			name: "fail signPolling v1", v: V1,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SignPolling(ctx, &csc.SignPollingRequest{RequestID: "r1"}, "")
			},
			wantErr: ErrNotSupported,
		},
		{
			name: "ok timestamp v2", v: V2,
			ex: map[string]exchange{"signatures/timestamp": {wantKeys: []string{"hash", "hashAlgo", "nonce"},
				check: sendsStdHashes, body: `{"timestamp":"` + urlSig + `"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Timestamp(ctx, &csc.TimestampRequest{Hash: testHash, HashAlgo: csc.OIDSHA256, Nonce: "0a"})
			},
			want: func(t *testing.T, out any) {
				if ts := out.(*csc.TimestampResponse); !bytes.Equal(ts.Timestamp, testHash) {
					t.Errorf("timestamp = %x", ts.Timestamp)
				}
			},
		},
		{
			name: "ok timestamp v1", v: V1,
			ex: map[string]exchange{"signatures/timestamp": {wantKeys: []string{"hash", "hashAlgo"},
				body: `{"timestamp":"` + stdHash + `"}`}},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Timestamp(ctx, &csc.TimestampRequest{Hash: testHash, HashAlgo: csc.OIDSHA256})
			},
		},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.v, tc.ex)
			c := mustClient(t, f.url(tc.v), WithTokenSource(StaticToken("AT")))
			if c.Version() != tc.v {
				t.Fatalf("version %v", c.Version())
			}
			out, err := tc.call(testCtx(t), c)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("err %T is not *Error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.want != nil {
				tc.want(t, out)
			}
			for path := range tc.ex {
				if f.count(path) == 0 {
					t.Errorf("%s was not called", path)
				}
			}
		})
	}
}

// TestInfoGETFallback: a server that refuses POST info (405) is asked by GET.
func TestInfoGETFallback(t *testing.T) {
	srv := newFake(t, V2, nil)
	srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"specs":"2.0.0.2","name":"cz","authType":["oauth2code"],"methods":[]}`))
	})
	c := mustClient(t, srv.url(V2))
	info, err := c.Info(testCtx(t), nil)
	if err != nil || info.Name != "cz" {
		t.Fatalf("info %+v, err %v", info, err)
	}
}

// TestListAllCredentials follows v1 pages and stops on a repeated token.
func TestListAllCredentials(t *testing.T) {
	tests := []struct {
		name    string
		pages   map[string]string // pageToken → answer
		wantIDs []string
		ok      bool
	}{
		{"ok two pages", map[string]string{
			"":   `{"credentialIDs":["a","b"],"nextPageToken":"p2"}`,
			"p2": `{"credentialIDs":["c"]}`,
		}, []string{"a", "b", "c"}, true},
		{"fail token loop", map[string]string{
			"":   `{"credentialIDs":["a"],"nextPageToken":"p2"}`,
			"p2": `{"credentialIDs":["b"],"nextPageToken":"p2"}`,
		}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, V1, nil)
			f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req csc.CredentialsListRequestV1
				body := new(bytes.Buffer)
				body.ReadFrom(r.Body)
				if err := csc.Decode(body.Bytes(), &req); err != nil {
					t.Errorf("decode: %v", err)
				}
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(tc.pages[req.PageToken]))
			})
			c := mustClient(t, f.url(V1), WithTokenSource(StaticToken("AT")))
			all, err := c.ListAllCredentials(testCtx(t), &csc.CredentialsListRequest{MaxResults: 2})
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if tc.ok && !slices.Equal(all.CredentialIDs, tc.wantIDs) {
				t.Fatalf("ids %v", all.CredentialIDs)
			}
			if !tc.ok && !errors.Is(err, ErrBadResponse) {
				t.Fatalf("err %v is not ErrBadResponse", err)
			}
		})
	}
}

func TestNewBaseURL(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts []Option
		want string
		v    Version
		ok   bool
	}{
		{"ok v2", "https://h/csc/v2", nil, "https://h/csc/v2", V2, true},
		{"ok v1 trailing slash", "https://h/p/csc/v1/", nil, "https://h/p/csc/v1", V1, true},
		{"ok default v2 appended", "https://h:8443", nil, "https://h:8443/csc/v2", V2, true},
		{"ok v1 appended", "https://h/prefix", []Option{WithVersion(V1)}, "https://h/prefix/csc/v1", V1, true},
		{"ok loopback http", "http://127.0.0.1:1/csc/v2", nil, "http://127.0.0.1:1/csc/v2", V2, true},
		{"ok http with option", "http://rssp/csc/v2", []Option{WithInsecureHTTP()}, "http://rssp/csc/v2", V2, true},
		{"fail http remote", "http://rssp/csc/v2", nil, "", 0, false},
		{"fail version conflict", "https://h/csc/v1", []Option{WithVersion(V2)}, "", 0, false},
		{"fail scheme", "ftp://h/csc/v2", nil, "", 0, false},
		{"fail user info", "https://u:p@h/csc/v2", nil, "", 0, false},
		{"fail query", "https://h/csc/v2?x=1", nil, "", 0, false},
		{"fail no host", "/csc/v2", nil, "", 0, false},
		{"fail missing CA file", "https://h/csc/v2", []Option{WithCAFile("/nonexistent/ca.pem")}, "", 0, false},
		{"fail short pin", "https://h/csc/v2", []Option{WithPinnedSPKI([]byte{1, 2})}, "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.url, tc.opts...)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if !tc.ok {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("err %v is not ErrInvalidArgument", err)
				}
				return
			}
			if c.BaseURL() != tc.want || c.Version() != tc.v {
				t.Fatalf("got %s %v", c.BaseURL(), c.Version())
			}
		})
	}
}

func TestEncodeQueryHashes(t *testing.T) {
	got := EncodeQueryHashes([][]byte{testHash, {0xff}})
	want := base64.RawURLEncoding.EncodeToString(testHash) + ",_w"
	if got != want || strings.ContainsAny(got, "+/=") {
		t.Fatalf("got %q, want %q", got, want)
	}
}
