package server_test

import (
	"crypto"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/notify"
	"github.com/csctoken/csctoken/rssp/service"
)

// phone opens the approval link of the newest notification and answers.
func phone(t *testing.T, srv *rssptest.Server, credID, decision string) {
	t.Helper()
	m, err := notify.Latest(filepath.Join(srv.Dir, "spool"), notify.Approval, credID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client.Get(m.Link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Approve") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("approval page: %d %s", resp.StatusCode, page)
	}
	u, _ := url.Parse(m.Link)
	resp, err = srv.Client.PostForm(strings.Split(m.Link, "?")[0], url.Values{"t": {u.Query().Get("t")}, "decision": {decision}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("decision: %d %s", resp.StatusCode, page)
	}
	// The link is single-use.
	resp, err = srv.Client.PostForm(strings.Split(m.Link, "?")[0], url.Values{"t": {u.Query().Get("t")}, "decision": {"approve"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second decision: %d", resp.StatusCode)
	}
}

// TestOutOfBand: a PIN AND PasswordOOB credential answers authorize with
// 202 and a handle; authorizeCheck stays 202 until the user answers on the
// approval page, then gives the SAD once (approve) or access_denied (deny).
func TestOutOfBand(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, OOB: true, SCAL: 2})
	tok := srv.Login(t, user, password)
	var info csc.CredentialInfo
	rssptest.Must(t, srv.Call(t, "credentials/info", tok, map[string]any{"credentialID": id, "authInfo": true})).Decode(t, &info)
	if info.Auth.Expression != "PIN AND OOB" || info.Auth.Objects[1].Type != csc.AuthPasswordOOB {
		t.Fatalf("auth: %+v", info.Auth)
	}
	d := digest(crypto.SHA256, "oob")
	authorize := func() string {
		r := srv.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1,
			"hashes": []csc.Bytes{d}, "hashAlgorithmOID": csc.OIDSHA256,
			"authData": []map[string]string{{"id": "PIN", "value": pin}, {"id": "OOB"}}})
		var ar csc.AuthorizeResponse
		r.Decode(t, &ar)
		if r.Status != http.StatusAccepted || ar.Handle == "" || ar.SAD != "" {
			t.Fatalf("authorize: %d %s", r.Status, r.Body)
		}
		return ar.Handle
	}
	check := func(h string) rssptest.Response {
		return srv.Call(t, "credentials/authorizeCheck", tok, map[string]any{"handle": h})
	}
	// Wrong PIN fails before anything is sent to the phone.
	if r := srv.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1,
		"hashes": []csc.Bytes{d}, "hashAlgorithmOID": csc.OIDSHA256, "authData": []map[string]string{{"id": "PIN", "value": "999999"}}}); r.Error().Code != "invalid_pin" {
		t.Fatalf("wrong PIN: %s", r.Body)
	}

	h := authorize()
	if r := check(h); r.Status != http.StatusAccepted {
		t.Fatalf("pending check: %d %s", r.Status, r.Body)
	}
	phone(t, srv, id, "approve")
	var ar csc.AuthorizeResponse
	rssptest.Must(t, check(h)).Decode(t, &ar)
	if ar.SAD == "" {
		t.Fatal("no SAD after approval")
	}
	if r := check(h); r.Status != 400 {
		t.Fatalf("handle reused: %d %s", r.Status, r.Body)
	}
	rssptest.Must(t, srv.Call(t, "signatures/signHash", tok, csc.SignHashRequest{CredentialID: id, SAD: ar.SAD, Hashes: []csc.Bytes{d}, SignAlgo: csc.OIDECDSAWithSHA256}))

	h = authorize()
	phone(t, srv, id, "deny")
	if r := check(h); r.Status != 403 || r.Error().Code != "access_denied" {
		t.Fatalf("denied: %d %s", r.Status, r.Body)
	}
	if r := check("forged"); r.Status != 400 {
		t.Fatalf("forged handle: %d", r.Status)
	}
}

// TestOnlineOTP: getChallenge sends a code out of band; it authorizes
// once; a wrong code counts as a failed factor.
func TestOnlineOTP(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.RSA2048, PIN: pin, OTP: service.OnlineOTP})
	tok := srv.Login(t, user, password)
	var info csc.CredentialInfo
	rssptest.Must(t, srv.Call(t, "credentials/info", tok, map[string]any{"credentialID": id, "authInfo": true})).Decode(t, &info)
	if info.Auth.Objects[1].Type != csc.AuthChallengeResponse {
		t.Fatalf("auth: %+v", info.Auth)
	}
	if r := srv.Call(t, "credentials/getChallenge", tok, map[string]any{"credentialID": id, "authObjectID": "PIN"}); r.Status != 400 {
		t.Fatalf("challenge for the PIN: %d %s", r.Status, r.Body)
	}
	if r := srv.Call(t, "credentials/getChallenge", tok, map[string]any{"credentialID": id, "authObjectID": "OTP"}); r.Status != http.StatusNoContent {
		t.Fatalf("getChallenge: %d %s", r.Status, r.Body)
	}
	m, err := notify.Latest(filepath.Join(srv.Dir, "spool"), notify.OTP, id)
	if err != nil || len(m.Code) != 6 {
		t.Fatalf("no OTP delivered: %v", err)
	}
	if strings.Contains(srv.Logs.String(), m.Code) {
		t.Fatal("the OTP is in the server log")
	}
	authorize := func(code string) rssptest.Response {
		return srv.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1,
			"authData": []map[string]string{{"id": "PIN", "value": pin}, {"id": "OTP", "value": code}}})
	}
	wrong := "000000"
	if m.Code == wrong {
		wrong = "111111"
	}
	if r := authorize(wrong); r.Error().Code != "invalid_otp" {
		t.Fatalf("wrong OTP: %s", r.Body)
	}
	rssptest.Must(t, authorize(m.Code))
	if r := authorize(m.Code); r.Error().Code != "invalid_otp" {
		t.Fatalf("OTP reused: %s", r.Body)
	}
}

// TestAsync: operationMode A returns a responseID; signPolling answers 202
// until done, then the signatures; another user cannot poll it.
func TestAsync(t *testing.T) {
	f := newFixture(t)
	d := digest(crypto.SHA256, "async")
	var sr csc.SignHashResponse
	rssptest.Must(t, f.srv.Call(t, "signatures/signHash", f.tok, csc.SignHashRequest{CredentialID: f.rsa, SAD: f.sad, Hashes: []csc.Bytes{d, d},
		HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDRSA, OperationMode: "A", ValidityPeriod: 60000})).Decode(t, &sr)
	if sr.ResponseID == "" || len(sr.Signatures) != 0 {
		t.Fatalf("async answer: %+v", sr)
	}
	if r := f.srv.Call(t, "signatures/signPolling", f.bobTok, map[string]any{"requestID": sr.ResponseID}); r.Status != 400 {
		t.Fatalf("another user polled: %d %s", r.Status, r.Body)
	}
	var done csc.SignHashResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := f.srv.Call(t, "signatures/signPolling", f.tok, map[string]any{"requestID": sr.ResponseID})
		if r.Status == http.StatusAccepted {
			if r.Error().Code != "accepted_request" || time.Now().After(deadline) {
				t.Fatalf("pending: %s", r.Body)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		rssptest.Must(t, r).Decode(t, &done)
		break
	}
	if len(done.Signatures) != 2 {
		t.Fatalf("got %d signatures", len(done.Signatures))
	}
	var info csc.CredentialInfo
	rssptest.Must(t, f.srv.Call(t, "credentials/info", f.tok, map[string]any{"credentialID": f.rsa, "certificates": "chain"})).Decode(t, &info)
	verify(t, info.Cert.Certificates, d, csc.OIDRSA, crypto.SHA256, done.Signatures[0])
	// The SAD gave 2 of its 5 signatures to the asynchronous call.
	r := f.srv.Call(t, "signatures/signHash", f.tok, csc.SignHashRequest{CredentialID: f.rsa, SAD: f.sad, Hashes: []csc.Bytes{d, d, d, d},
		HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDRSA})
	if r.Status != 400 || !strings.Contains(r.Error().Description, "3 more") {
		t.Fatalf("SAD count after async: %s", r.Body)
	}
	if r := f.srv.Call(t, "signatures/signPolling", f.tok, map[string]any{"requestID": "nope"}); r.Status != 400 {
		t.Fatalf("unknown requestID: %d", r.Status)
	}
}
