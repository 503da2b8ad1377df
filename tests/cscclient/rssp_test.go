package cscclient_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/notify"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	rUser = "alice"
	rPass = "a long password"
	rPIN  = "246810"
)

func sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// TestAgainstRSSP calls every method of both wire versions against the real
// server, over HTTPS on 127.0.0.1, and verifies the signatures.
func TestAgainstRSSP(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, rUser, rPass)
	rsaID, _ := srv.AddCredential(t, service.CredentialSpec{User: rUser, KeyType: keystore.RSA2048, PIN: rPIN, Multisign: 4})
	ecID, _ := srv.AddCredential(t, service.CredentialSpec{User: rUser, KeyType: keystore.ECP256, PIN: rPIN, SCAL: 2})
	otpID, _ := srv.AddCredential(t, service.CredentialSpec{User: rUser, KeyType: keystore.ECP256, PIN: rPIN, OTP: service.OnlineOTP})
	oobID, _ := srv.AddCredential(t, service.CredentialSpec{User: rUser, KeyType: keystore.ECP256, PIN: rPIN, OOB: true})
	caFile := filepath.Join(srv.Dir, "tls-ca.pem")

	for _, base := range []string{srv.URL, strings.Replace(srv.URL, "/csc/v2", "/csc/v1", 1)} {
		v1 := strings.HasSuffix(base, "/v1")
		t.Run(base[strings.LastIndex(base, "/")+1:], func(t *testing.T) {
			ctx := t.Context()
			cl, err := cscclient.New(base, cscclient.WithCAFile(caFile))
			if err != nil {
				t.Fatal(err)
			}
			info, err := cl.Info(ctx, nil)
			if err != nil || len(info.Methods) == 0 {
				t.Fatalf("info: %v", err)
			}
			if _, err := cl.LoginToken(ctx, rUser, "wrong", false); !errors.Is(err, cscclient.ErrAuthentication) {
				t.Fatalf("wrong password: %v", err)
			}
			tok, err := cl.LoginToken(ctx, rUser, rPass, true)
			if err != nil || tok.RefreshToken == "" {
				t.Fatalf("login: %v", err)
			}
			cl.SetTokenSource(cscclient.StaticToken(tok.AccessToken))

			list, err := cl.ListCredentials(ctx, &csc.CredentialsListRequest{CredentialInfo: true, Certificates: csc.CertsChain, AuthInfo: true})
			if err != nil || len(list.CredentialIDs) != 4 {
				t.Fatalf("list: %v %+v", err, list)
			}
			ci, err := cl.CredentialInfo(ctx, &csc.CredentialsInfoRequest{CredentialID: rsaID, Certificates: csc.CertsChain, CertInfo: true, AuthInfo: true})
			if err != nil || ci.Cert == nil || len(ci.Cert.Certificates) != 3 || ci.Auth == nil {
				t.Fatalf("credentials/info: %v %+v", err, ci)
			}
			cert, _ := x509.ParseCertificate(ci.Cert.Certificates[0])

			// Wrong PIN: typed, with the attempts left.
			_, err = cl.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: rsaID, NumSignatures: 1, AuthData: []csc.AuthData{{ID: "PIN", Value: "000000"}}})
			var ce *cscclient.Error
			if !errors.Is(err, cscclient.ErrWrongPIN) || !errors.As(err, &ce) || ce.RemainingAttempts() != 4 {
				t.Fatalf("wrong PIN: %v", err)
			}
			d := sum("client document " + base)
			ar, err := cl.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: rsaID, NumSignatures: 2, AuthData: []csc.AuthData{{ID: "PIN", Value: rPIN}}})
			if err != nil {
				t.Fatalf("authorize: %v", err)
			}
			ext, err := cl.ExtendTransaction(ctx, &csc.ExtendTransactionRequest{CredentialID: rsaID, SAD: ar.SAD})
			if err != nil {
				t.Fatalf("extendTransaction: %v", err)
			}
			sr, err := cl.SignHash(ctx, &csc.SignHashRequest{CredentialID: rsaID, SAD: ext.SAD, Hashes: []csc.Bytes{d},
				HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDRSA})
			if err != nil || len(sr.Signatures) != 1 {
				t.Fatalf("signHash: %v", err)
			}
			if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, d, sr.Signatures[0]); err != nil {
				t.Fatalf("RSA signature: %v", err)
			}
			// SCAL2 EC: bound to the hash; the client returns DER.
			ar, err = cl.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: ecID, NumSignatures: 1, Hashes: []csc.Bytes{d},
				HashAlgorithmOID: csc.OIDSHA256, AuthData: []csc.AuthData{{ID: "PIN", Value: rPIN}}})
			if err != nil {
				t.Fatalf("authorize SCAL2: %v", err)
			}
			sr, err = cl.SignHash(ctx, &csc.SignHashRequest{CredentialID: ecID, SAD: ar.SAD, Hashes: []csc.Bytes{d},
				HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256})
			if err != nil {
				t.Fatalf("signHash SCAL2: %v", err)
			}
			eci, _ := cl.CredentialInfo(ctx, &csc.CredentialsInfoRequest{CredentialID: ecID})
			ecCert, _ := x509.ParseCertificate(eci.Cert.Certificates[0])
			if !ecdsa.VerifyASN1(ecCert.PublicKey.(*ecdsa.PublicKey), d, sr.Signatures[0]) {
				t.Fatal("ECDSA signature does not verify")
			}
			var replay *cscclient.Error
			if _, err := cl.SignHash(ctx, &csc.SignHashRequest{CredentialID: ecID, SAD: ar.SAD, Hashes: []csc.Bytes{d},
				HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256}); !errors.As(err, &replay) || replay.StatusCode != 400 {
				t.Fatalf("SCAL2 SAD replay: %v", err)
			}
			// Online OTP: getChallenge (v1: sendOTP), code out of band.
			if _, err := cl.GetChallenge(ctx, &csc.GetChallengeRequest{CredentialID: otpID, AuthObjectID: "OTP"}); err != nil {
				t.Fatalf("getChallenge: %v", err)
			}
			m, err := notify.Latest(filepath.Join(srv.Dir, "spool"), notify.OTP, otpID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: otpID, NumSignatures: 1,
				AuthData: []csc.AuthData{{ID: "PIN", Value: rPIN}, {ID: "OTP", Value: m.Code}}}); err != nil {
				t.Fatalf("authorize with online OTP: %v", err)
			}
			ts, err := cl.Timestamp(ctx, &csc.TimestampRequest{Hash: d, HashAlgo: csc.OIDSHA256})
			if err != nil || len(ts.Timestamp) == 0 {
				t.Fatalf("timestamp: %v", err)
			}
			if !v1 {
				// Out of band: 202, then the user approves on the "phone".
				ar, err := cl.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: oobID, NumSignatures: 1,
					AuthData: []csc.AuthData{{ID: "PIN", Value: rPIN}, {ID: "OOB"}}})
				if err != nil || ar.Handle == "" {
					t.Fatalf("authorize OOB: %v %+v", err, ar)
				}
				go approve(t, srv, oobID)
				done, err := cl.WaitAuthorization(ctx, ar.Handle, cscclient.PollOptions{Interval: 50 * time.Millisecond, Timeout: 20 * time.Second})
				if err != nil || done.SAD == "" {
					t.Fatalf("authorizeCheck: %v", err)
				}
				// Asynchronous signHash and signPolling.
				ar2, _ := cl.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: rsaID, NumSignatures: 1, AuthData: []csc.AuthData{{ID: "PIN", Value: rPIN}}})
				as, err := cl.SignHash(ctx, &csc.SignHashRequest{CredentialID: rsaID, SAD: ar2.SAD, Hashes: []csc.Bytes{d},
					HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDRSA, OperationMode: csc.OperationAsync})
				if err != nil || as.ResponseID == "" {
					t.Fatalf("async signHash: %v", err)
				}
				var got *csc.SignHashResponse
				for range 200 {
					got, err = cl.SignPolling(ctx, &csc.SignPollingRequest{RequestID: as.ResponseID}, csc.OIDRSA)
					if !errors.Is(err, cscclient.ErrPending) {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if err != nil || len(got.Signatures) != 1 || rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, d, got.Signatures[0]) != nil {
					t.Fatalf("signPolling: %v", err)
				}
			}
			if err := cl.Revoke(ctx, &csc.RevokeRequest{Token: tok.RefreshToken, TokenTypeHint: "refresh_token"}); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if _, err := cl.ListCredentials(ctx, &csc.CredentialsListRequest{}); !errors.Is(err, cscclient.ErrExpiredToken) && !errors.Is(err, cscclient.ErrInvalidToken) {
				t.Fatalf("after revoke: %v", err)
			}
		})
	}
}

// approve plays the user's phone: it opens the newest approval link and
// approves.
func approve(t *testing.T, srv *rssptest.Server, credID string) {
	var m notify.Message
	var err error
	for range 200 {
		if m, err = notify.Latest(filepath.Join(srv.Dir, "spool"), notify.Approval, credID); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Error(err)
		return
	}
	u, _ := url.Parse(m.Link)
	resp, err := srv.Client.PostForm(strings.Split(m.Link, "?")[0], url.Values{"t": {u.Query().Get("t")}, "decision": {"approve"}})
	if err != nil {
		t.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("approval: %d", resp.StatusCode)
	}
}
