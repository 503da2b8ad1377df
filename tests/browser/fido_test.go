package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/internal/chromiumtest"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestBrowserSecurityKey: pkcs11-tool signs through libcsctoken.so in
// browser mode with a SCAL 2 credential enrolled with --auth fido. The user
// has registered a security key (Chromium's DevTools virtual authenticator)
// on the service's keys page; the module's service login then asks for the
// password and the key, and its consent page for the key (with user
// verification) and the PIN; openssl verifies the signature, and the audit
// log names the key of both steps.
func TestBrowserSecurityKey(t *testing.T) {
	chromiumtest.Need(t)
	need(t, "gcc", "p11-kit-1", "pkcs11-tool", "openssl", "xdg-open")
	lib := build(t, "libcsctoken.so", "-buildmode=c-shared", "./cgo")

	// Security keys need a host name: the pages are at https://localhost.
	srv := rssptest.Start(t, rssptest.Options{Localhost: true})
	srv.AddUser(t, user, password)
	cred := newCredential(t, srv, t.TempDir(), service.CredentialSpec{User: user, KeyType: "ec-p256", PIN: pin, SCAL: 2,
		AuthMode: service.AuthFIDO, Description: "Key-protected EC key"})
	if _, _, err := srv.App.Service.AddOAuthClient(context.Background(), service.ClientSpec{ID: clientID, Name: "csctoken desktop",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, Public: true}); err != nil {
		t.Fatal(err)
	}
	bctx := chromiumtest.Start(t, filepath.Join(srv.Dir, ca.TLSCertFile))
	chromiumtest.VirtualAuthenticator(t, bctx)
	if err := chromiumtest.RegisterKey(bctx, srv.App.OAuth.BaseURL()+"/oauth2/keys", user, password, "Desk key"); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`[[service]]
name = %q
url = %q
auth = "oauth2"
client_id = %q
credential_auth = "browser"
ca_file = %q
timeout = "20s"
`, svcName, srv.URL, clientID, filepath.Join(srv.Dir, "tls-ca.pem"))
	e := newEnv(t, config, bctx)

	text := "sealed with a security key\n"
	data, sig := filepath.Join(e.dir, "sealed.txt"), filepath.Join(e.dir, "sealed.sig")
	if err := os.WriteFile(data, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.start(t, "pkcs11-tool", "--module", lib, "--login", "--sign", "--id", cred.ckaID, "--mechanism", "ECDSA-SHA256",
		"--signature-format", "openssl", "-i", data, "-o", sig)
	login := e.browse(t, p, chromiumtest.Plan{WantShown: []string{"csctoken desktop"}})
	if !slices.Equal(login.Pages[:2], []string{"login", "key"}) {
		t.Errorf("service login: pages %v, want the login page then the security key", login.Pages)
	}
	consent := e.browse(t, p, chromiumtest.Plan{WantShown: []string{digestB64([]byte(text)), "Key-protected EC key",
		"security key is asked for", "PIN or fingerprint"}})
	if consent.Pages[0] != "consent" {
		t.Errorf("pages %v", consent.Pages)
	}
	p.mustWait(t)
	verify(t, e, cred, data, sig)

	for _, ev := range []struct{ event, cred string }{{"fido login", ""}, {"fido consent", cred.id}} {
		rows := rssptest.AuditEvents(t, srv.App.Config.Path(srv.App.Config.Store.Path), ev.event, ev.cred)
		if len(rows) != 1 || rows[0].Result != "ok" || !strings.Contains(rows[0].Detail, `"Desk key"`) {
			t.Errorf("audit %s: %+v", ev.event, rows)
		}
	}
}
