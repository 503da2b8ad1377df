package service_test

import (
	"strings"
	"testing"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestSignatureQualifier: a credential's qualifier is set at enrolment,
// returned by credentials/info and list, filters the list, and a signHash
// naming a qualifier signs only with a credential that carries it.
func TestSignatureQualifier(t *testing.T) {
	f := newFixture(t)
	qes, _ := f.credential(t, func(s *service.CredentialSpec) { s.SignatureQualifier = "eu_eidas_qes" })
	seal, _ := f.credential(t, func(s *service.CredentialSpec) { s.SignatureQualifier = "eu_eidas_qeseal" })
	plain, _ := f.credential(t, nil)

	t.Run("fail unknown qualifier at enrolment", func(t *testing.T) {
		_, _, err := f.Service.AddCredential(t.Context(), service.CredentialSpec{User: "alice", KeyType: "ec-p256", PIN: pin,
			SignatureQualifier: "eu_eidas_best"})
		wantKind(t, err, service.ErrInvalidRequest)
	})

	t.Run("info", func(t *testing.T) {
		for id, want := range map[string]string{qes: "eu_eidas_qes", seal: "eu_eidas_qeseal", plain: ""} {
			info, err := f.Service.CredentialInfo(t.Context(), f.alice, id, service.InfoOptions{})
			if err != nil || info.SignatureQualifier != want {
				t.Errorf("credential %s: qualifier %q, want %q (%v)", id, info.SignatureQualifier, want, err)
			}
		}
	})

	for _, tc := range []struct {
		name, q string
		want    []string
		wantErr bool
	}{
		{"ok all", "", []string{qes, seal, plain}, false},
		{"ok qes", "eu_eidas_qes", []string{qes}, false},
		{"ok qeseal", "eu_eidas_qeseal", []string{seal}, false},
		{"ok none carries it", "eu_eidas_aes", []string{}, false},
		{"fail unknown", "eu_eidas_best", nil, true},
	} {
		t.Run("list "+tc.name, func(t *testing.T) {
			ids, infos, err := f.Service.ListCredentials(t.Context(), f.alice, true, false, service.InfoOptions{SignatureQualifier: tc.q})
			if tc.wantErr {
				wantKind(t, err, service.ErrInvalidRequest)
				return
			}
			if err != nil || strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("listed %v, want %v (%v)", ids, tc.want, err)
			}
			for _, in := range infos {
				if tc.q != "" && in.SignatureQualifier != tc.q {
					t.Errorf("credential %s listed with qualifier %q", in.CredentialID, in.SignatureQualifier)
				}
			}
		})
	}

	for _, tc := range []struct {
		name, cred, q, desc string
	}{
		{"ok matching", qes, "eu_eidas_qes", ""},
		{"ok none asked", qes, "", ""},
		{"ok none asked, none carried", plain, "", ""},
		{"fail another qualifier", qes, "eu_eidas_aes", "does not support the signature qualifier"},
		{"fail credential without one", plain, "eu_eidas_qes", "does not support the signature qualifier"},
		{"fail unknown", seal, "eu_eidas_best", "Invalid parameter signatureQualifier"},
	} {
		t.Run("signHash "+tc.name, func(t *testing.T) {
			sad := f.mustAuthorize(t, tc.cred, 1)
			sigs, err := f.Service.SignHash(t.Context(), f.alice, service.SignRequest{CredentialID: tc.cred, SAD: sad,
				Hashes: [][]byte{digest("q")}, HashAlgorithm: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256,
				SignatureQualifier: tc.q})
			if tc.desc == "" {
				if err != nil || len(sigs) != 1 {
					t.Fatalf("%d signatures, %v", len(sigs), err)
				}
				return
			}
			wantKind(t, err, service.ErrInvalidRequest)
			if !strings.Contains(err.Error(), tc.desc) {
				t.Errorf("error %q does not say %q", err, tc.desc)
			}
			if s, err := f.Store.SAD(t.Context(), sadHash(sad)); err != nil || s.Remaining != 1 {
				t.Errorf("a refused request consumed the SAD (%v)", err)
			}
		})
	}
}
