// Package hydra tests the rssp behind a real ORY Hydra (docs/external-as.md):
// Hydra issues the access tokens, the rssp serves as its login and consent
// provider and validates its tokens. Headless Chromium plays the user;
// csctoken login and pkcs11-tool through libcsctoken.so are the programs.
package hydra

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/chromiumtest"
	"github.com/csctoken/csctoken/internal/hydratest"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user     = "alice"
	subject  = "7c0b5a52-alice"
	password = "correct horse battery 4711"
	pin      = "80317465592"
	audience = "urn:csctoken:test-rssp"
	clientID = "csctoken"
	svcName  = "Hydra RSSP"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// env is the desktop of the test's user (as in tests/browser): a private
// HOME and XDG directories, the module config, and $BROWSER pointing at
// chromiumtest's opener, whose URLs the test hands to the browser.
type env struct {
	dir     string
	vars    []string
	browser context.Context
	urls    <-chan string
}

func newEnv(t *testing.T, config string, browser context.Context) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), browser: browser}
	opener := chromiumtest.NewOpener(t, e.dir)
	e.urls = opener.URLs
	cfg := filepath.Join(e.dir, "csctoken.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	runtime := filepath.Join(e.dir, "run")
	if err := os.Mkdir(runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	e.vars = append(chromiumtest.StripDesktop(os.Environ(), "CSCTOKEN_", "XDG_", "HOME=", "DBUS_SESSION_BUS_ADDRESS="),
		"HOME="+filepath.Join(e.dir, "home"), "XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"),
		"XDG_CACHE_HOME="+filepath.Join(e.dir, "cache"), "XDG_RUNTIME_DIR="+runtime,
		"CSCTOKEN_CONFIG="+cfg, "BROWSER="+opener.Script, "CSCTOKEN_LOG="+filepath.Join(e.dir, "module.log"))
	return e
}

// proc is a program running under the user's environment.
type proc struct {
	cmd  *exec.Cmd
	out  strings.Builder
	done chan error
}

func (e *env) start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p := &proc{cmd: exec.CommandContext(ctx, name, args...), done: make(chan error, 1)}
	p.cmd.Env, p.cmd.Dir = e.vars, e.dir
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); cancel() }()
	return p
}

func (p *proc) wait(t *testing.T) string {
	t.Helper()
	if err := <-p.done; err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(p.cmd.Args, " "), err, p.out.String())
	}
	return p.out.String()
}

// browse waits for p to open the browser and plays the user there.
func (e *env) browse(t *testing.T, p *proc, pl chromiumtest.Plan) chromiumtest.Outcome {
	t.Helper()
	if pl.User == "" {
		pl.User, pl.Password, pl.PIN = user, password, pin
	}
	if pl.Timeout == 0 {
		pl.Timeout = 40 * time.Second
	}
	select {
	case u := <-e.urls:
		if !strings.HasPrefix(u, "http://127.0.0.1:") || !strings.Contains(u, "/oauth2/auth?") {
			t.Errorf("the browser was not sent to Hydra: %s", u)
		}
		out, err := chromiumtest.Drive(e.browser, u, pl)
		if err != nil {
			t.Fatalf("browser (pages %v): %v", out.Pages, err)
		}
		return out
	case err := <-p.done:
		t.Fatalf("%v ended (%v) without opening the browser:\n%s", p.cmd.Args, err, p.out.String())
	case <-time.After(40 * time.Second):
		t.Fatalf("%v did not open the browser", p.cmd.Args)
	}
	return chromiumtest.Outcome{}
}

// TestHydra: csctoken login and pkcs11-tool signatures through ORY Hydra,
// the user at the rssp's login and consent pages in Chromium; then tokens
// Hydra issues that the rssp must refuse.
func TestHydra(t *testing.T) {
	chromiumtest.Need(t)
	testbin.Need(t, "CSCTOKEN_REQUIRE_TOOLS", "gcc", "p11-kit-1", "pkcs11-tool", "openssl", "xdg-open")
	hydratest.Binary(t) // skip (or fail under CSCTOKEN_REQUIRE_HYDRA=1) before building anything
	lib, cli := testbin.Library(t), testbin.CLI(t)

	ports := hydratest.FreePorts(t)
	// Localhost: the pages at a host name, WebAuthn's relying party.
	srv := rssptest.Start(t, rssptest.Options{Localhost: true, Edit: func(c *config.Config) {
		c.OAuth2 = config.OAuth2{Issuer: ports.Issuer(), Audience: audience, HydraAdminURL: ports.AdminURL(),
			IntrospectionEndpoint: ports.AdminURL() + "/admin/oauth2/introspect",
			IntrospectionCacheTTL: config.Duration{Duration: -1}, KeyCacheTTL: config.Duration{Duration: time.Second},
			KeyRefreshInterval: config.Duration{Duration: time.Second}}
	}})
	base := srv.App.Config.PublicURL
	h := hydratest.Start(t, hydratest.Options{Ports: ports, AccessTokenStrategy: "jwt",
		LoginURL: base + "/oauth2/hydra/login", ConsentURL: base + "/oauth2/hydra/consent"})
	h.CreateClient(t, map[string]any{"client_id": clientID, "client_name": "csctoken desktop",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"scope": "service credential offline_access", "redirect_uris": []string{"http://127.0.0.1/callback"},
		"token_endpoint_auth_method": "none", "audience": []string{audience}})

	svc := srv.App.Service
	if _, err := svc.AddUserWithSubject(t.Context(), user, password, subject); err != nil {
		t.Fatal(err)
	}
	rsaID, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "rsa-2048", PIN: pin, Description: "RSA key"})
	ecID, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "ec-p256", PIN: pin, SCAL: 2, Description: "EC key"})

	var info csc.InfoResponse
	rssptest.Must(t, srv.Call(t, "info", "", map[string]any{})).Decode(t, &info)
	if info.OAuth2Issuer != ports.Issuer() {
		t.Fatalf("info oauth2Issuer %q, want %q", info.OAuth2Issuer, ports.Issuer())
	}

	config := fmt.Sprintf(`[[service]]
name = %q
url = %q
auth = "oauth2"
client_id = %q
credential_auth = "browser"
ca_file = %q
timeout = "30s"
`, svcName, srv.URL, clientID, filepath.Join(srv.Dir, "tls-ca.pem"))
	e := newEnv(t, config, chromiumtest.Start(t, filepath.Join(srv.Dir, ca.TLSCertFile)))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rssp log:\n%s", lastLines(srv.Logs.String(), 40))
			if b, err := os.ReadFile(filepath.Join(e.dir, "module.log")); err == nil {
				t.Logf("module log:\n%s", lastLines(string(b), 40))
			}
		}
	})

	t.Run("csctoken login through Hydra", func(t *testing.T) {
		p := e.start(t, cli, "login")
		out := e.browse(t, p, chromiumtest.Plan{WantShown: []string{"csctoken desktop", "Signed in as " + user}})
		if len(out.Pages) < 3 || out.Pages[0] != "login" || !strings.Contains(out.Consent, "Allow access") {
			t.Errorf("pages %v, consent:\n%s", out.Pages, out.Consent)
		}
		if res := p.wait(t); !strings.Contains(res, "Logged in to \""+svcName+"\"") {
			t.Fatalf("login:\n%s", res)
		}
		if st := e.start(t, cli, "status").wait(t); !strings.Contains(st, "renewed silently (refresh token)") {
			t.Errorf("status: no refresh token from Hydra:\n%s", st)
		}
		// The module lists the credentials with Hydra's token.
		list := e.start(t, cli, "list").wait(t)
		for _, want := range []string{"RSA key", "EC key"} {
			if !strings.Contains(list, want) {
				t.Errorf("csctoken list lacks %q:\n%s", want, list)
			}
		}
	})

	for _, k := range []struct {
		name, id, mech string
		extra          []string
	}{
		{"RSA", rsaID, "SHA256-RSA-PKCS", nil},
		{"ECDSA SCAL 2", ecID, "ECDSA-SHA256", []string{"--signature-format", "openssl"}},
	} {
		t.Run(k.name+": pkcs11-tool signs with a Hydra credential token", func(t *testing.T) {
			ckaID := ckaIDOf(t, e, cli, k.id)
			text := "a contract for " + k.name + "\n"
			data, sig := filepath.Join(e.dir, k.name+".txt"), filepath.Join(e.dir, k.name+".sig")
			if err := os.WriteFile(data, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			before := srv.AuditCount(t, "sign", k.id)
			p := e.start(t, "pkcs11-tool", append([]string{"--module", lib, "--sign", "--id", ckaID, "--mechanism", k.mech,
				"-i", data, "-o", sig}, k.extra...)...)
			d := sha256.Sum256([]byte(text))
			out := e.browse(t, p, chromiumtest.Plan{WantShown: []string{base64.StdEncoding.EncodeToString(d[:]), k.id}})
			if out.Pages[0] != "consent" {
				t.Errorf("pages %v: Hydra did not keep the login", out.Pages)
			}
			p.wait(t)
			verify(t, e, cli, k.id, data, sig)
			if after := srv.AuditCount(t, "sign", k.id); after != before+1 {
				t.Errorf("sign audit rows %d → %d", before, after)
			}
		})
	}

	t.Run("RSA: the user denies on the consent page", func(t *testing.T) {
		before := srv.AuditCount(t, "sign", rsaID)
		data, sig := filepath.Join(e.dir, "unwanted.txt"), filepath.Join(e.dir, "unwanted.sig")
		if err := os.WriteFile(data, []byte("not this one\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p := e.start(t, "pkcs11-tool", "--module", lib, "--sign", "--id", ckaIDOf(t, e, cli, rsaID), "--mechanism", "SHA256-RSA-PKCS", "-i", data, "-o", sig)
		// pkcs11-tool tries again multi-part when C_Sign fails: a second
		// consent, denied too. Hydra sends the denial to the module.
		for range 2 {
			if out := e.browse(t, p, chromiumtest.Plan{Deny: true}); !strings.Contains(out.Message, "declined") {
				t.Errorf("loopback page: %q", out.Message)
			}
		}
		err := <-p.done
		if err == nil || !strings.Contains(p.out.String(), "CKR_FUNCTION_CANCELED") {
			t.Fatalf("pkcs11-tool: %v, want CKR_FUNCTION_CANCELED:\n%s", err, p.out.String())
		}
		if after := srv.AuditCount(t, "sign", rsaID); after != before {
			t.Errorf("sign audit rows %d → %d after the user denied", before, after)
		}
	})

	t.Run("FIDO: password and key at Hydra's login, key and PIN at its consent, pkcs11-tool signs", func(t *testing.T) {
		const dave, davePW, davePIN = "dave", "dave's passphrase 2718", "27182818"
		if _, err := svc.AddUserWithSubject(t.Context(), dave, davePW, "3f9d-dave"); err != nil {
			t.Fatal(err)
		}
		fidoID, _ := srv.AddCredential(t, service.CredentialSpec{User: dave, KeyType: "ec-p256", PIN: davePIN, SCAL: 2,
			AuthMode: service.AuthFIDO, Description: "Key-protected seal"})
		chromiumtest.VirtualAuthenticator(t, e.browser)
		// alice's sessions end first (the rssp's and Hydra's), and dave's
		// with the registration.
		if err := chromedp.Do(e.browser, chromedp.Navigate("about:blank"), chromiumtest.ClearCookies); err != nil {
			t.Fatal(err)
		}
		if err := chromiumtest.RegisterKey(e.browser, base+"/oauth2/keys", dave, davePW, "Desk key"); err != nil {
			t.Fatal(err)
		}
		de := newEnv(t, config, e.browser)
		plan := chromiumtest.Plan{User: dave, Password: davePW, PIN: davePIN}
		p := de.start(t, cli, "login")
		out := de.browse(t, p, plan)
		if strings.Join(out.Pages, " ") != "login key consent done" {
			t.Errorf("pages %v: want the password, the key, then the consent", out.Pages)
		}
		if res := p.wait(t); !strings.Contains(res, "Logged in to \""+svcName+"\"") {
			t.Fatalf("login:\n%s", res)
		}
		text := "sealed with a key\n"
		data, sig := filepath.Join(de.dir, "fido.txt"), filepath.Join(de.dir, "fido.sig")
		if err := os.WriteFile(data, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		before := srv.AuditCount(t, "sign", fidoID)
		p = de.start(t, "pkcs11-tool", "--module", lib, "--sign", "--id", ckaIDOf(t, de, cli, fidoID), "--mechanism", "ECDSA-SHA256",
			"-i", data, "-o", sig, "--signature-format", "openssl")
		d := sha256.Sum256([]byte(text))
		plan.WantShown = []string{base64.StdEncoding.EncodeToString(d[:]), fidoID, "security key is asked for", "with its PIN or fingerprint"}
		de.browse(t, p, plan)
		p.wait(t)
		verify(t, de, cli, fidoID, data, sig)
		if after := srv.AuditCount(t, "sign", fidoID); after != before+1 {
			t.Errorf("sign audit rows %d → %d", before, after)
		}
		evs, err := svc.Store().AuditEvents(t.Context(), 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		var fidoConsent, consent []string
		for _, ev := range evs {
			switch {
			case ev.Event == "fido consent" && ev.CredentialID == fidoID:
				fidoConsent = append(fidoConsent, ev.Result+" "+ev.Detail)
			case ev.Event == "oauth2 consent" && ev.CredentialID == fidoID:
				consent = append(consent, ev.Result+" "+ev.Detail)
			}
		}
		if len(fidoConsent) != 1 || !strings.HasPrefix(fidoConsent[0], "ok ") || !strings.Contains(fidoConsent[0], `"Desk key"`) {
			t.Errorf("fido consent audit: %q", fidoConsent)
		}
		if len(consent) != 1 || !strings.HasPrefix(consent[0], "ok ") || !strings.Contains(consent[0], `key "Desk key"`) {
			t.Errorf("the consent's audit row does not name the key: %q", consent)
		}
	})

	t.Run("FIDO: fail login through Hydra without the required key", func(t *testing.T) {
		const carol, carolPW = "carol", "carol's passphrase 1618"
		if _, err := svc.AddUserWithSubject(t.Context(), carol, carolPW, "5e21-carol"); err != nil {
			t.Fatal(err)
		}
		if err := svc.SetRequireFIDO(t.Context(), carol, true); err != nil {
			t.Fatal(err)
		}
		ce := newEnv(t, config, e.browser)
		p := ce.start(t, cli, "login")
		defer func() { _ = p.cmd.Process.Kill(); <-p.done }()
		var u string
		select {
		case u = <-ce.urls:
		case <-time.After(40 * time.Second):
			t.Fatalf("csctoken login did not open the browser:\n%s", p.out.String())
		}
		ctx, cancel := context.WithTimeout(e.browser, 40*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"), chromiumtest.ClearCookies, chromedp.Navigate(u),
			chromedp.WaitVisible(chromedp.ID("username")), chromedp.SendKeys(chromedp.ID("username"), carol),
			chromedp.SendKeys(chromedp.ID("password"), carolPW), chromedp.Click(chromedp.ID("sign-in")),
			chromedp.WaitVisible(chromedp.ID("form-error"))); err != nil {
			body, _ := chromedp.Run(e.browser, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("login page: %v\n%s", err, body)
		}
		msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("form-error")))
		if err != nil || !strings.Contains(msg, "security key is required") {
			t.Fatalf("login without the required key: %q %v", msg, err)
		}
		evs, err := svc.Store().AuditEvents(t.Context(), 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Event == "oauth2 login" && strings.Contains(ev.Detail, "5e21-carol") {
				t.Errorf("Hydra's login was accepted for carol: %+v", ev)
			}
		}
		if last := evs[len(evs)-1]; last.Event != "fido login" || last.Result != "access_denied" {
			t.Errorf("last audit row %+v, want fido login access_denied", last)
		}
	})

	t.Run("refusals of Hydra's tokens", func(t *testing.T) {
		// client_credentials tokens: the client is the subject.
		for _, u := range []string{"robot", "robot-opaque"} {
			if _, err := svc.AddUserWithSubject(t.Context(), u, "", u); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct{ id, strategy string }{{"robot", "jwt"}, {"robot-opaque", "opaque"}} {
			h.CreateClient(t, map[string]any{"client_id": c.id, "client_secret": "a robot's secret 0123456789",
				"grant_types": []string{"client_credentials"}, "scope": "service", "audience": []string{audience, "urn:other"},
				"access_token_strategy": c.strategy})
		}
		jwtTok := h.ClientCredentials(t, "robot", "a robot's secret 0123456789", "service", audience)
		call := func(tok string) rssptest.Response {
			return srv.Call(t, "credentials/list", tok, map[string]any{})
		}
		rssptest.Must(t, call(jwtTok))
		parts := strings.Split(jwtTok, ".")
		sig := []byte(parts[2])
		sig[5] ^= 'A' ^ 'B'
		opaque := h.ClientCredentials(t, "robot-opaque", "a robot's secret 0123456789", "service", audience)
		refusals := []struct {
			name, token, code string
		}{
			{"fail another audience", h.ClientCredentials(t, "robot", "a robot's secret 0123456789", "service", "urn:other"), "invalid_token"},
			{"fail tampered signature", parts[0] + "." + parts[1] + "." + string(sig), "invalid_token"},
			{"fail alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", "invalid_token"},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				if r := call(tc.token); r.Error().Code != tc.code {
					t.Fatalf("%d %s, want %s", r.Status, r.Body, tc.code)
				}
			})
		}
		t.Run("opaque token: introspected, then revoked", func(t *testing.T) {
			rssptest.Must(t, call(opaque))
			h.Revoke(t, "robot-opaque", "a robot's secret 0123456789", opaque)
			if r := call(opaque); r.Error().Code != "invalid_token" {
				t.Fatalf("revoked: %d %s", r.Status, r.Body)
			}
		})
		t.Run("unknown subject", func(t *testing.T) {
			if err := svc.SetExternalSubject(t.Context(), "robot", ""); err != nil {
				t.Fatal(err)
			}
			if r := call(jwtTok); r.Error().Code != "access_denied" {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			if err := svc.SetExternalSubject(t.Context(), "robot", "robot"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("key removed from the JWKS", func(t *testing.T) {
			var set struct {
				Keys []struct {
					KID string `json:"kid"`
				} `json:"keys"`
			}
			h.Do(t, "GET", h.Admin+"/admin/keys/hydra.jwt.access-token", nil, 200, &set)
			// A new key signs from now on; the old one is deleted.
			h.Do(t, "POST", h.Admin+"/admin/keys/hydra.jwt.access-token", map[string]any{"alg": "RS256", "use": "sig"}, 201, nil)
			for _, k := range set.Keys {
				h.Do(t, "DELETE", h.Admin+"/admin/keys/hydra.jwt.access-token/"+k.KID, nil, 204, nil)
			}
			time.Sleep(1100 * time.Millisecond) // key_cache_ttl and key_refresh_interval: 1s
			if r := call(jwtTok); r.Error().Code != "invalid_token" {
				t.Fatalf("token of a removed key: %d %s", r.Status, r.Body)
			}
			rssptest.Must(t, call(h.ClientCredentials(t, "robot", "a robot's secret 0123456789", "service", audience)))
		})
	})
}

// ckaIDOf reads the CKA_ID csctoken list shows for a credential.
func ckaIDOf(t *testing.T, e *env, cli, credID string) string {
	t.Helper()
	out := e.start(t, cli, "list").wait(t)
	blocks := strings.Split(out, "\n\n")
	for _, b := range blocks {
		if !strings.Contains(b, credID) {
			continue
		}
		for _, line := range strings.Split(b, "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "CKA_ID:" && f[1] != "-" {
				return f[1]
			}
		}
	}
	t.Fatalf("no CKA_ID for %s in:\n%s", credID, out)
	return ""
}

// verify checks a signature with openssl and the credential's
// certificate, as csctoken list --pem shows it.
func verify(t *testing.T, e *env, cli, credID, data, sig string) {
	t.Helper()
	out := e.start(t, cli, "list", "--pem").wait(t)
	i := strings.Index(out, credID)
	if i < 0 {
		t.Fatalf("no %s in csctoken list --pem", credID)
	}
	rest := out[i:]
	b := strings.Index(rest, "-----BEGIN CERTIFICATE-----")
	end := strings.Index(rest, "-----END CERTIFICATE-----")
	if b < 0 || end < b {
		t.Fatalf("no certificate for %s:\n%s", credID, rest)
	}
	certFile := filepath.Join(e.dir, credID+".pem")
	if err := os.WriteFile(certFile, []byte(rest[b:end+len("-----END CERTIFICATE-----")]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(e.dir, credID+".pub")
	e.start(t, "openssl", "x509", "-in", certFile, "-pubkey", "-noout", "-out", pub).wait(t)
	if res := e.start(t, "openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig, data).wait(t); !strings.Contains(res, "Verified OK") {
		t.Fatalf("openssl: %s", res)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
