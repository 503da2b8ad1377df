package oauth_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/chromiumtest"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// authenticatorCredentials returns the credentials the virtual
// authenticator holds.
func authenticatorCredentials(t *testing.T, ctx context.Context, id cdpwebauthn.AuthenticatorID) []*cdpwebauthn.Credential {
	t.Helper()
	creds, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) ([]*cdpwebauthn.Credential, error) {
		res, err := cdp.Call(ctx, tg, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: id})
		if err != nil {
			return nil, err
		}
		return res.Credentials, nil
	})
	if err != nil {
		t.Fatalf("credentials of the authenticator: %v", err)
	}
	return creds
}

// TestFIDOBrowser is the person with a security key, in a headless
// Chromium whose DevTools virtual authenticator is the key: they register
// it on the security keys page, log in with password and key, consent with
// key and PIN to a SCAL 2 credential enrolled with --auth fido (user
// verification required), and the credential token signs. Refused: a user
// required to use a key who has none, and the same key cloned (its
// signature counter set back), which the audit log records.
func TestFIDOBrowser(t *testing.T) {
	chromiumtest.Need(t)
	srv := rssptest.Start(t, rssptest.Options{Localhost: true})
	srv.AddUser(t, user, password)
	srv.AddUser(t, "carol", "carol's password")
	svc := srv.App.Service
	if err := svc.SetRequireFIDO(t.Context(), "carol", true); err != nil {
		t.Fatal(err)
	}
	fidoCred, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, SCAL: 2,
		AuthMode: service.AuthFIDO, Description: "Key-protected seal", SignatureQualifier: "eu_eidas_qeseal"})
	issuer := srv.App.OAuth.BaseURL()
	if !strings.HasPrefix(issuer, "https://localhost:") {
		t.Fatalf("issuer %s: want https://localhost:PORT", issuer)
	}
	cb := newCallback(t)
	if _, _, err := svc.AddOAuthClient(t.Context(), service.ClientSpec{ID: "desktop", Name: "Desktop signer",
		RedirectURIs: []string{cb.url}, Public: true}); err != nil {
		t.Fatal(err)
	}
	bctx := chromiumtest.Start(t, filepath.Join(srv.Dir, ca.TLSCertFile), chromedp.WindowSize(960, 1100))
	auth := chromiumtest.VirtualAuthenticator(t, bctx)
	step := func(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			loc, _ := chromedp.Run(bctx, chromedp.Location())
			body, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s (at %s): %v\n%s", what, loc, err, body)
		}
	}
	text := func(t *testing.T, sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	login := func(t *testing.T, name, pw string) {
		t.Helper()
		step(t, "login", chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), name), chromedp.SendKeys(chromedp.ID("password"), pw),
			chromedp.Click(chromedp.ID("sign-in")))
	}
	auditResults := func(t *testing.T, event string) []store.AuditEvent {
		t.Helper()
		evs, err := svc.Store().AuditEvents(t.Context(), 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		var out []store.AuditEvent
		for _, e := range evs {
			if e.Event == event {
				out = append(out, e)
			}
		}
		return out
	}

	t.Run("register a key", func(t *testing.T) {
		step(t, "keys page", chromedp.Navigate(issuer+"/oauth2/keys"))
		login(t, user, password)
		step(t, "add", chromedp.WaitVisible(chromedp.ID("no-keys")),
			chromedp.SendKeys(chromedp.ID("key-name"), "Desk key"), chromedp.Click(chromedp.ID("add-key")),
			chromedp.WaitVisible(chromedp.ID("use-key")), chromedp.Click(chromedp.ID("use-key")),
			chromedp.WaitVisible(chromedp.ID("notice")))
		if got := text(t, "#keys"); !strings.Contains(got, "Desk key") {
			t.Fatalf("keys page: %s", got)
		}
		if n := len(authenticatorCredentials(t, bctx, auth)); n != 1 {
			t.Fatalf("the authenticator holds %d credentials", n)
		}
		if rows := auditResults(t, "fido register"); len(rows) != 1 || rows[0].Result != "ok" || !strings.Contains(rows[0].Detail, `"Desk key"`) {
			t.Fatalf("audit: %+v", rows)
		}
	})

	t.Run("login with key, consent with key and PIN, sign", func(t *testing.T) {
		// A new browser session: log out by clearing the cookies.
		step(t, "clear cookies", chromedp.Navigate("about:blank"), chromiumtest.ClearCookies)
		h := digest("sealed with a key")
		verifier := oauth2.GenerateVerifier()
		conf := &oauth2.Config{ClientID: "desktop", RedirectURL: cb.url, Endpoint: oauth2.Endpoint{
			AuthURL: issuer + "/oauth2/authorize", TokenURL: issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
		authURL := conf.AuthCodeURL("f1", oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("scope", "credential"), oauth2.SetAuthURLParam("credentialID", fidoCred),
			oauth2.SetAuthURLParam("numSignatures", "1"), oauth2.SetAuthURLParam("hashes", b64url(h)),
			oauth2.SetAuthURLParam("hashAlgorithmOID", csc.OIDSHA256))
		step(t, "authorize", chromedp.Navigate(authURL))
		login(t, user, password)
		step(t, "second factor", chromedp.WaitVisible(chromedp.ID("use-key")), chromedp.Click(chromedp.ID("use-key")),
			chromedp.WaitVisible(chromedp.ID("key-needed")))
		if got := text(t, "main"); !strings.Contains(got, "Key-protected seal") || !strings.Contains(got, "PIN or fingerprint") {
			t.Fatalf("consent page: %s", got)
		}
		step(t, "consent", chromedp.SendKeys(chromedp.ID("pin"), pin), chromedp.Click(chromedp.ID("approve")))
		q := cb.wait(t)
		if q.Get("error") != "" || q.Get("state") != "f1" {
			t.Fatalf("callback %v", q)
		}
		octx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client)
		tok, err := conf.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		var sh csc.SignHashResponse
		rssptest.Must(t, srv.Call(t, "signatures/signHash", tok.AccessToken, csc.SignHashRequest{CredentialID: fidoCred,
			SignatureQualifier: "eu_eidas_qeseal", Hashes: []csc.Bytes{h}, SignAlgo: csc.OIDECDSAWithSHA256})).Decode(t, &sh)
		e := &env{srv: srv, issuer: issuer, client: srv.Client}
		e.verify(t, tok.AccessToken, fidoCred, [][]byte{h}, sh.Signatures)
		for _, ev := range []string{"fido login", "fido consent"} {
			rows := auditResults(t, ev)
			if len(rows) != 1 || rows[0].Result != "ok" || !strings.Contains(rows[0].Detail, `"Desk key"`) {
				t.Errorf("audit %s: %+v", ev, rows)
			}
		}
		consent := auditResults(t, "oauth2 consent")
		if len(consent) == 0 || !strings.Contains(consent[len(consent)-1].Detail, `key "Desk key"`) {
			t.Errorf("the consent's audit row does not name the key: %+v", consent)
		}
	})

	t.Run("fail required key not registered", func(t *testing.T) {
		step(t, "clear cookies", chromedp.Navigate("about:blank"), chromiumtest.ClearCookies)
		step(t, "keys page", chromedp.Navigate(issuer+"/oauth2/keys"))
		login(t, "carol", "carol's password")
		step(t, "refused", chromedp.WaitVisible(chromedp.ID("form-error")))
		if got := text(t, "#form-error"); !strings.Contains(got, "security key is required") {
			t.Fatalf("login without the required key: %q", got)
		}
		if rows := auditResults(t, "fido login"); rows[len(rows)-1].Result != "access_denied" {
			t.Errorf("audit: %+v", rows[len(rows)-1])
		}
	})

	t.Run("fail cloned authenticator", func(t *testing.T) {
		creds := authenticatorCredentials(t, bctx, auth)
		if len(creds) != 1 || creds[0].SignCount < 2 {
			t.Fatalf("credentials %+v", creds)
		}
		// The clone: the same credential (ID, private key) with the
		// counter it had before its last two uses.
		clone := *creds[0]
		clone.SignCount -= 2
		if _, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
			if _, err := cdp.Call(ctx, tg, cdpwebauthn.RemoveCredential, cdpwebauthn.RemoveCredentialParams{
				AuthenticatorID: auth, CredentialID: clone.CredentialID}); err != nil {
				return cdp.Empty{}, err
			}
			// Only the fields of the credential itself: this Chromium refuses
			// the CMTG members cdproto always sends.
			return cdp.Empty{}, tg.Call(ctx, cdpwebauthn.CommandAddCredential, map[string]any{
				"authenticatorId": auth, "credential": map[string]any{
					"credentialId": clone.CredentialID, "isResidentCredential": clone.IsResidentCredential,
					"rpId": clone.RpID, "privateKey": clone.PrivateKey, "userHandle": clone.UserHandle,
					"signCount": clone.SignCount}}, nil)
		}); err != nil {
			t.Fatalf("clone the credential: %v", err)
		}
		step(t, "clear cookies", chromedp.Navigate("about:blank"), chromiumtest.ClearCookies)
		step(t, "keys page", chromedp.Navigate(issuer+"/oauth2/keys"))
		login(t, user, password)
		step(t, "key", chromedp.WaitVisible(chromedp.ID("use-key")), chromedp.Click(chromedp.ID("use-key")),
			chromedp.WaitVisible(chromedp.ID("form-error")))
		if got := text(t, "#form-error"); !strings.Contains(got, "cloned") {
			t.Fatalf("cloned key: %q", got)
		}
		rows := auditResults(t, "fido login")
		if last := rows[len(rows)-1]; last.Result != "cloned_authenticator" || !strings.Contains(last.Detail, `"Desk key"`) {
			t.Errorf("audit: %+v", last)
		}
	})
}
