package server_test

import (
	"bytes"
	"crypto"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/notify"
	"github.com/csctoken/csctoken/rssp/service"
)

// v1client is a CSC API v1.0.4.0 client as deployed signing applications
// write it: v1 paths and v1 field names, hand-made JSON.
type v1client struct {
	t    *testing.T
	srv  *rssptest.Server
	base string
	tok  string
}

func (c *v1client) call(method string, body any) (int, map[string]any) {
	c.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.base+"/"+method, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if c.tok != "" {
		req.Header.Set("Authorization", "Bearer "+c.tok)
	}
	resp, err := c.srv.Client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func (c *v1client) must(method string, body any) map[string]any {
	c.t.Helper()
	st, out := c.call(method, body)
	if st != 200 {
		c.t.Fatalf("%s: %d %v", method, st, out)
	}
	return out
}

// TestV1 drives every v1 method against the same server and state as v2.
func TestV1(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	ids := []string{}
	for _, kt := range []keystore.KeyType{keystore.RSA2048, keystore.ECP256, keystore.ECP384} {
		id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: kt, PIN: pin, Multisign: 3})
		ids = append(ids, id)
	}
	otpCred, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, OTP: service.OnlineOTP})
	c := &v1client{t: t, srv: srv, base: strings.Replace(srv.URL, "/csc/v2", "/csc/v1", 1)}

	info := c.must("info", map[string]any{})
	if info["specs"] != csc.SpecV1 || info["signAlgorithms"] != nil {
		t.Fatalf("v1 info: %v", info)
	}
	methods := strings.Join(toStrings(info["methods"]), " ")
	if !strings.Contains(methods, "credentials/sendOTP") || strings.Contains(methods, "getChallenge") || strings.Contains(methods, "signPolling") {
		t.Fatalf("v1 methods: %s", methods)
	}

	req, _ := http.NewRequest(http.MethodPost, c.base+"/auth/login", strings.NewReader(`{"rememberMe":true}`))
	req.SetBasicAuth(user, password)
	resp, err := srv.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var lr csc.LoginResponse
	json.NewDecoder(resp.Body).Decode(&lr)
	resp.Body.Close()
	c.tok = lr.AccessToken

	// Paging with maxResults / pageToken.
	var got []string
	page := map[string]any{"maxResults": 3}
	for {
		out := c.must("credentials/list", page)
		got = append(got, toStrings(out["credentialIDs"])...)
		next, _ := out["nextPageToken"].(string)
		if next == "" {
			break
		}
		page = map[string]any{"maxResults": 3, "pageToken": next}
	}
	if len(got) != 4 || got[0] != ids[0] || got[3] != otpCred {
		t.Fatalf("paged list: %v", got)
	}

	// credentials/info in v1 shape: authMode, PIN and OTP objects.
	ci := c.must("credentials/info", map[string]any{"credentialID": otpCred, "certificates": "chain", "certInfo": true})
	pinInfo, _ := ci["PIN"].(map[string]any)
	otpInfo, _ := ci["OTP"].(map[string]any)
	if ci["authMode"] != "explicit" || pinInfo["presence"] != "true" || otpInfo["type"] != "online" || ci["auth"] != nil {
		t.Fatalf("v1 credentials/info: %v", ci)
	}

	for i, id := range ids {
		ci := c.must("credentials/info", map[string]any{"credentialID": id, "certificates": "chain"})
		cert, _ := ci["cert"].(map[string]any)
		var chain []csc.Bytes
		for _, s := range toStrings(cert["certificates"]) {
			b, _ := csc.DecodeBase64(s)
			chain = append(chain, b)
		}
		h := []crypto.Hash{crypto.SHA256, crypto.SHA256, crypto.SHA384}[i]
		signAlgo := []string{csc.OIDSHA256WithRSA, csc.OIDECDSAWithSHA256, csc.OIDECDSAWithSHA384}[i]
		d := digest(h, "v1 document")
		a := c.must("credentials/authorize", map[string]any{"credentialID": id, "numSignatures": 2, "hash": []csc.Bytes{d, d}, "PIN": pin})
		sad := a["SAD"].(string)
		ext := c.must("credentials/extendTransaction", map[string]any{"credentialID": id, "SAD": sad, "hash": []csc.Bytes{d, d}})
		sad = ext["SAD"].(string)
		out := c.must("signatures/signHash", map[string]any{"credentialID": id, "SAD": sad, "hash": []csc.Bytes{d, d},
			"hashAlgo": csc.HashOID(h), "signAlgo": signAlgo})
		sigs := toStrings(out["signatures"])
		if len(sigs) != 2 {
			t.Fatalf("v1 signHash: %v", out)
		}
		sig, _ := csc.DecodeBase64(sigs[0])
		verify(t, chain, d, signAlgo, h, sig)
	}

	// Wrong PIN in v1: invalid_pin.
	if st, out := c.call("credentials/authorize", map[string]any{"credentialID": ids[0], "numSignatures": 1, "PIN": "000000"}); st != 400 || out["error"] != "invalid_pin" {
		t.Fatalf("v1 wrong PIN: %d %v", st, out)
	}
	// sendOTP (v1) is getChallenge (v2): 204, code out of band, then OTP.
	if st, _ := c.call("credentials/sendOTP", map[string]any{"credentialID": otpCred}); st != http.StatusNoContent {
		t.Fatalf("sendOTP: %d", st)
	}
	m, err := notify.Latest(filepath.Join(srv.Dir, "spool"), notify.OTP, otpCred)
	if err != nil {
		t.Fatal(err)
	}
	c.must("credentials/authorize", map[string]any{"credentialID": otpCred, "numSignatures": 1, "PIN": pin, "OTP": m.Code})

	ts := c.must("signatures/timestamp", map[string]any{"hash": csc.Bytes(digest(crypto.SHA256, "ts")), "hashAlgo": csc.OIDSHA256})
	if ts["timestamp"] == "" {
		t.Fatal("no timestamp")
	}
	// v2-only methods are not under /csc/v1.
	if st, _ := c.call("credentials/authorizeCheck", map[string]any{"handle": "x"}); st != 404 {
		t.Fatalf("authorizeCheck under v1: %d", st)
	}
	req, _ = http.NewRequest(http.MethodPost, c.base+"/auth/revoke", strings.NewReader(`{"token":"`+lr.RefreshToken+`","token_type_hint":"refresh_token"}`))
	req.Header.Set("Authorization", "Bearer "+c.tok)
	resp, err = srv.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("v1 revoke: %d", resp.StatusCode)
	}
	if st, out := c.call("credentials/list", map[string]any{}); st != 401 {
		t.Fatalf("after revoke: %d %v", st, out)
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
