package csc

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// keysOf returns the top-level member names of v marshalled.
func keysOf(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestV1WireNames: the v1 forms carry v1's names and none of v2's.
func TestV1WireNames(t *testing.T) {
	hashes := []Bytes{{1, 2, 3}}
	auth, err := AuthorizeRequest{CredentialID: "c", NumSignatures: 1, Hashes: hashes, HashAlgorithmOID: OIDSHA256,
		AuthData: []AuthData{{ID: "PIN", Value: "1"}, {ID: "OTP", Value: "2"}}, Description: "d", ClientData: "x"}.V1(nil)
	if err != nil {
		t.Fatal(err)
	}
	sign, err := SignHashRequest{CredentialID: "c", SAD: "s", Hashes: hashes, HashAlgorithmOID: OIDSHA256,
		SignAlgo: OIDRSA, SignAlgoParams: Bytes{5, 0}, ClientData: "x"}.V1()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		v    any
		want []string
	}{
		{"authorize", auth, []string{"OTP", "PIN", "clientData", "credentialID", "description", "hash", "numSignatures"}},
		{"signHash", sign, []string{"SAD", "clientData", "credentialID", "hash", "hashAlgo", "signAlgo", "signAlgoParams"}},
		{"extendTransaction", ExtendTransactionRequest{CredentialID: "c", Hashes: hashes, HashAlgorithmOID: OIDSHA256, SAD: "s"}.V1(),
			[]string{"SAD", "credentialID", "hash"}},
		{"sendOTP", GetChallengeRequest{CredentialID: "c", AuthObjectID: "OTP"}.V1(), []string{"credentialID"}},
		{"list", CredentialsListRequest{UserID: "u", CredentialInfo: true, Certificates: CertsChain, MaxResults: 5, PageToken: "p"}.V1(),
			[]string{"maxResults", "pageToken", "userID"}},
		{"list response", CredentialsListResponse{CredentialIDs: []string{"a"}, CredentialInfos: []CredentialInfo{{}}, NextPageToken: "n"}.V1(),
			[]string{"credentialIDs", "nextPageToken"}},
		{"info", InfoResponse{Specs: SpecV1, SignAlgorithms: &SignAlgorithms{}, OAuth2Issuer: "x"}.V1(),
			[]string{"authType", "description", "lang", "logo", "methods", "name", "region", "specs"}},
		{"credentials/info", CredentialInfo{Key: KeyInfo{Status: "enabled"}, Multisign: 1,
			Auth: &AuthInfo{Mode: AuthModeExplicit, Objects: []AuthObject{{Type: AuthPassword, ID: "PIN"}}}}.V1(),
			[]string{"OTP", "PIN", "authMode", "key", "multisign"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := keysOf(t, tc.v); !slices.Equal(got, tc.want) {
				t.Fatalf("keys %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCredentialInfoV1ToV2(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *AuthInfo
	}{
		{"ok PIN only", `{"authMode":"explicit","PIN":{"presence":"true","format":"N","label":"PIN"},"OTP":{"presence":"false"}}`,
			&AuthInfo{Mode: AuthModeExplicit, Objects: []AuthObject{{Type: AuthPassword, ID: V1PINID, Format: "N", Label: "PIN"}}}},
		{"ok PIN and online OTP, booleans", `{"authMode":"explicit","PIN":{"presence":true},"OTP":{"presence":true,"type":"online","provider":"sms","ID":"d1"}}`,
			&AuthInfo{Mode: AuthModeExplicit, Objects: []AuthObject{{Type: AuthPassword, ID: V1PINID},
				{Type: AuthChallengeResponse, ID: V1OTPID, Generator: "sms"}}}},
		{"ok offline OTP optional", `{"authMode":"explicit","PIN":{"presence":"true"},"OTP":{"presence":"optional","type":"offline","provider":"totp"}}`,
			&AuthInfo{Mode: AuthModeExplicit, Expression: "PIN", Objects: []AuthObject{{Type: AuthPassword, ID: V1PINID},
				{Type: AuthPassword, ID: V1OTPID, Generator: "totp"}}}},
		{"ok implicit", `{"authMode":"implicit"}`, &AuthInfo{Mode: AuthModeExplicit}},
		{"ok oauth2code", `{"authMode":"OAuth2Code"}`, &AuthInfo{Mode: AuthModeOAuth2Code}},
		{"ok no authMode", `{}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v1 CredentialInfoV1
			if err := json.Unmarshal([]byte(tc.in), &v1); err != nil {
				t.Fatal(err)
			}
			got := v1.V2().Auth
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("auth %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestCredentialInfoRoundTrip: v2 → v1 → v2 keeps what v1 can say.
func TestCredentialInfoRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		auth *AuthInfo
	}{
		{"PIN", &AuthInfo{Mode: AuthModeExplicit, Objects: []AuthObject{{Type: AuthPassword, ID: V1PINID, Format: "N", Label: "l", Description: "d"}}}},
		{"PIN and TOTP", &AuthInfo{Mode: AuthModeExplicit, Objects: []AuthObject{{Type: AuthPassword, ID: V1PINID},
			{Type: AuthPassword, ID: V1OTPID, Format: "N", Generator: "totp"}}}},
		{"PIN and online OTP", &AuthInfo{Mode: AuthModeExplicit, Objects: []AuthObject{{Type: AuthPassword, ID: V1PINID},
			{Type: AuthChallengeResponse, ID: V1OTPID, Generator: "sms"}}}},
		{"no factor", &AuthInfo{Mode: AuthModeExplicit}},
		{"oauth2code", &AuthInfo{Mode: AuthModeOAuth2Code}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := CredentialInfo{Description: "x", Key: KeyInfo{Status: "enabled", Algo: []string{OIDRSA}, Len: 2048},
				SCAL: "2", Multisign: 3, Auth: tc.auth}
			b, err := json.Marshal(in.V1())
			if err != nil {
				t.Fatal(err)
			}
			var v1 CredentialInfoV1
			if err := json.Unmarshal(b, &v1); err != nil {
				t.Fatal(err)
			}
			out := v1.V2()
			if !reflect.DeepEqual(out, in) {
				t.Fatalf("round trip\n got %+v %+v\nwant %+v %+v", out, out.Auth, in, in.Auth)
			}
		})
	}
}

func TestAuthorizeTranslation(t *testing.T) {
	auth := &AuthInfo{Mode: AuthModeExplicit, Objects: []AuthObject{
		{Type: AuthPassword, ID: "pin-1"}, {Type: AuthPassword, ID: "totp-1", Generator: "totp"}}}
	v2 := AuthorizeRequest{CredentialID: "c", NumSignatures: 2, Hashes: []Bytes{{1}}, HashAlgorithmOID: OIDSHA256,
		AuthData: []AuthData{{ID: "pin-1", Value: "1234"}, {ID: "totp-1", Value: "555"}}}
	v1, err := v2.V1(auth)
	if err != nil || v1.PIN != "1234" || v1.OTP != "555" || len(v1.Hash) != 1 {
		t.Fatalf("V1 = %+v, %v", v1, err)
	}
	back := v1.V2(auth, OIDSHA256)
	if !reflect.DeepEqual(back, v2) {
		t.Fatalf("V2 = %+v", back)
	}
	// Without the credential's objects, the IDs PIN and OTP are understood.
	if v1, err := (AuthorizeRequest{AuthData: []AuthData{{ID: "pin", Value: "1"}}}).V1(nil); err != nil || v1.PIN != "1" {
		t.Fatalf("V1(nil) = %+v, %v", v1, err)
	}
	_, err = AuthorizeRequest{AuthData: []AuthData{{ID: "push"}}}.V1(auth)
	if !errors.Is(err, ErrNotInV1) {
		t.Fatalf("OOB factor: err = %v", err)
	}
	if got := (SendOTPRequestV1{CredentialID: "c"}).V2(auth); got.AuthObjectID != "totp-1" {
		t.Fatalf("sendOTP V2 = %+v", got)
	}
}

func TestSignHashTranslation(t *testing.T) {
	v2 := SignHashRequest{CredentialID: "c", SAD: "s", Hashes: []Bytes{{1}}, HashAlgorithmOID: OIDSHA256, SignAlgo: OIDRSA}
	v1, err := v2.V1()
	if err != nil {
		t.Fatal(err)
	}
	if back := v1.V2(); !reflect.DeepEqual(back, v2) {
		t.Fatalf("round trip %+v", back)
	}
	tests := []struct {
		name string
		r    SignHashRequest
	}{
		{"fail async", SignHashRequest{SAD: "s", OperationMode: OperationAsync}},
		{"fail no SAD", SignHashRequest{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.r.V1(); !errors.Is(err, ErrNotInV1) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestInfoAndMethods(t *testing.T) {
	v2 := InfoResponse{Specs: SpecV2, Name: "n", AuthType: []string{"basic"},
		Methods: []string{"info", MethodGetChallenge, "credentials/authorizeCheck", "signatures/signHash", "signatures/signPolling"}}
	v1 := v2.V1()
	if want := []string{"info", MethodSendOTP, "signatures/signHash"}; !slices.Equal(v1.Methods, want) {
		t.Fatalf("v1 methods %v", v1.Methods)
	}
	if back := v1.V2(); !slices.Equal(back.Methods, []string{"info", MethodGetChallenge, "signatures/signHash"}) {
		t.Fatalf("v2 methods %v", back.Methods)
	}
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{MethodGetChallenge, MethodSendOTP, true},
		{"signatures/signHash", "signatures/signHash", true},
		{"credentials/authorizeCheck", "", false},
		{"signatures/signPolling", "", false},
	}
	for _, tc := range tests {
		if got, ok := MethodV1(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("MethodV1(%q) = %q, %v", tc.in, got, ok)
		}
	}
}

func TestPresence(t *testing.T) {
	tests := []struct {
		in   string
		want Presence
		ok   bool
	}{
		{`"true"`, PresenceTrue, true},
		{`true`, PresenceTrue, true},
		{`false`, PresenceFalse, true},
		{`"Optional"`, PresenceOptional, true},
		{`1`, "", false},
	}
	for _, tc := range tests {
		var p Presence
		err := json.Unmarshal([]byte(tc.in), &p)
		if tc.ok != (err == nil) || p != tc.want {
			t.Errorf("%s: %q, %v", tc.in, p, err)
		}
	}
}
