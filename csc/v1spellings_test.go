package csc

import (
	"reflect"
	"testing"
)

func TestV1SpellingsOnV2(t *testing.T) {
	h1, h2 := Bytes{1, 2, 3}, Bytes{4, 5, 6}
	const sha256 = "2.16.840.1.101.3.4.2.1"
	signs := []struct {
		name string
		body string
		want SignHashRequest
	}{
		{"ok v2 names", `{"credentialID":"c","hashes":["AQID"],"hashAlgorithmOID":"` + sha256 + `","signAlgo":"s"}`,
			SignHashRequest{CredentialID: "c", Hashes: []Bytes{h1}, HashAlgorithmOID: sha256, SignAlgo: "s"}},
		{"ok v1 names", `{"credentialID":"c","hash":["AQID"],"hashAlgo":"` + sha256 + `","signAlgo":"s","SAD":"x"}`,
			SignHashRequest{CredentialID: "c", Hashes: []Bytes{h1}, HashAlgorithmOID: sha256, SignAlgo: "s", SAD: "x"}},
		{"ok both: v2 wins", `{"credentialID":"c","hashes":["AQID"],"hash":["BAUG"],"hashAlgorithmOID":"a","hashAlgo":"b","signAlgo":"s"}`,
			SignHashRequest{CredentialID: "c", Hashes: []Bytes{h1}, HashAlgorithmOID: "a", SignAlgo: "s"}},
	}
	for _, tc := range signs {
		t.Run("signHash "+tc.name, func(t *testing.T) {
			var got SignHashRequest
			if err := Decode([]byte(tc.body), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	auths := []struct {
		name string
		body string
		want AuthorizeRequest
	}{
		{"ok v2 names", `{"credentialID":"c","numSignatures":1,"authData":[{"id":"PIN","value":"1234"}]}`,
			AuthorizeRequest{CredentialID: "c", NumSignatures: 1, AuthData: []AuthData{{ID: "PIN", Value: "1234"}}}},
		{"ok v1 PIN and OTP", `{"credentialID":"c","numSignatures":1,"PIN":"1234","OTP":"987654","hash":["BAUG"],"hashAlgo":"` + sha256 + `"}`,
			AuthorizeRequest{CredentialID: "c", NumSignatures: 1, Hashes: []Bytes{h2}, HashAlgorithmOID: sha256,
				AuthData: []AuthData{{ID: "PIN", Value: "1234"}, {ID: "OTP", Value: "987654"}}}},
		{"ok both: authData wins", `{"credentialID":"c","numSignatures":1,"PIN":"1111","authData":[{"id":"PIN","value":"2222"}]}`,
			AuthorizeRequest{CredentialID: "c", NumSignatures: 1, AuthData: []AuthData{{ID: "PIN", Value: "2222"}}}},
	}
	for _, tc := range auths {
		t.Run("authorize "+tc.name, func(t *testing.T) {
			var got AuthorizeRequest
			if err := Decode([]byte(tc.body), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, body := range []string{`{"hash":"notalist"}`, `{"PIN":12}`, `{"hashes":["AQID"],"hashes":["AQID"]}`} {
		t.Run("fail "+body, func(t *testing.T) {
			var r AuthorizeRequest
			if err := Decode([]byte(body), &r); err == nil {
				t.Errorf("decoded %+v", r)
			}
		})
	}
}
