package firefox

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user     = "alice"
	password = "correct horse battery 4711"
	pin      = "80317465592"
	clientID = "csctoken"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// rssp is the service of a test: the user, credentials and the CAs.
type rssp struct {
	srv       *rssptest.Server
	clientCAs []*x509.Certificate // the CA of the credentials' certificates
}

func startRSSP(t *testing.T) *rssp {
	t.Helper()
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	if _, _, err := srv.App.Service.AddOAuthClient(context.Background(), service.ClientSpec{ID: clientID, Name: "csctoken desktop",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, Public: true}); err != nil {
		t.Fatal(err)
	}
	return &rssp{srv: srv, clientCAs: readPEMCerts(t, filepath.Join(srv.Dir, "ca-root.pem"), filepath.Join(srv.Dir, "ca-issuing.pem"))}
}

// credential adds a credential and returns its certificate.
func (r *rssp) credential(t *testing.T, spec service.CredentialSpec) *x509.Certificate {
	t.Helper()
	spec.User, spec.PIN = user, pin
	id, _ := r.srv.AddCredential(t, spec)
	tok := r.srv.Login(t, user, password)
	var info csc.CredentialInfo
	rssptest.Must(t, r.srv.Call(t, "credentials/info", tok, csc.CredentialsInfoRequest{CredentialID: id, Certificates: csc.CertsSingle})).Decode(t, &info)
	if info.Cert == nil || len(info.Cert.Certificates) == 0 {
		t.Fatal("no certificate")
	}
	c, err := x509.ParseCertificate(info.Cert.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *rssp) config(credentialAuth string) string {
	return fmt.Sprintf(`[[service]]
name = "Test RSSP"
url = %q
auth = "basic"
username = %q
client_id = %q
credential_auth = %q
ca_file = %q
timeout = "20s"
`, r.srv.URL, user, clientID, credentialAuth, filepath.Join(r.srv.Dir, "tls-ca.pem"))
}

// basePrefs keep Firefox to the test: no first-run pages, updates,
// telemetry or background connections.
var basePrefs = map[string]string{
	"browser.shell.checkDefaultBrowser":                 "false",
	"browser.startup.homepage_override.mstone":          `"ignore"`,
	"browser.startup.page":                              "0",
	"startup.homepage_welcome_url":                      `""`,
	"startup.homepage_welcome_url.additional":           `""`,
	"browser.aboutwelcome.enabled":                      "false",
	"browser.tabs.warnOnClose":                          "false",
	"browser.warnOnQuit":                                "false",
	"browser.sessionstore.resume_from_crash":            "false",
	"datareporting.policy.dataSubmissionEnabled":        "false",
	"toolkit.telemetry.reportingpolicy.firstRun":        "false",
	"app.update.disabledForTesting":                     "true",
	"browser.safebrowsing.update.enabled":               "false",
	"browser.safebrowsing.downloads.remote.enabled":     "false",
	"network.captive-portal-service.enabled":            "false",
	"network.connectivity-service.enabled":              "false",
	"network.http.speculative-parallel-limit":           "0",
	"browser.newtabpage.enabled":                        "false",
	"extensions.update.enabled":                         "false",
	"security.OCSP.enabled":                             "0",
	"browser.translations.automaticallyPopup":           "false",
	"browser.region.network.url":                        `""`,
	"toolkit.startup.max_resumed_crashes":               "-1",
	"browser.crashReports.unsubmittedCheck.autoSubmit2": "false",
}

// newProfile creates a Firefox profile as a user does (firefox
// -CreateProfile, which puts it in the XDG location of current releases),
// registers the module in it with `csctoken register --firefox`, as the
// user would, trusts the rssp's TLS CA (the local site's certificate) and
// writes prefs.
func (d *desktop) newProfile(r *rssp, name string, prefs map[string]string) string {
	d.t.Helper()
	d.run("", firefoxExe, "--headless", "-CreateProfile", name)
	dir, err := d.profileDir(name)
	if err != nil {
		d.t.Fatalf("firefox -CreateProfile %s: %v", name, err)
	}
	out := d.run("", testbin.CLI(d.t), "register", "--firefox", "--library", testbin.Library(d.t))
	if !strings.Contains(out, dir+": new NSS database (profile never started); registered") {
		d.t.Fatalf("register --firefox:\n%s", out)
	}
	d.run("", "certutil", "-A", "-d", "sql:"+dir, "-n", "test site CA", "-t", "C,,", "-a", "-i", filepath.Join(r.srv.Dir, "tls-ca.pem"))
	var js strings.Builder
	for k, v := range basePrefs {
		fmt.Fprintf(&js, "user_pref(%q, %s);\n", k, v)
	}
	for k, v := range prefs {
		fmt.Fprintf(&js, "user_pref(%q, %s);\n", k, v)
	}
	if err := os.WriteFile(filepath.Join(dir, "user.js"), []byte(js.String()), 0o600); err != nil {
		d.t.Fatal(err)
	}
	return dir
}

// firefox starts Firefox on the profile at url.
func (d *desktop) firefox(profile, url string, limit time.Duration) *group {
	d.t.Helper()
	g := startGroup(d.t, limit, d.env, firefoxExe, "--no-remote", "--profile", profile, url)
	d.t.Cleanup(func() {
		if d.t.Failed() {
			d.keep("firefox-output.txt", writeTemp(d.t, g.output()))
		}
	})
	return g
}

func writeTemp(t *testing.T, s string) string {
	f := filepath.Join(t.TempDir(), "out.txt")
	_ = os.WriteFile(f, []byte(s), 0o600)
	return f
}

// browserWindow is the main window of the host Firefox.
func (d *desktop) browserWindow() string {
	d.t.Helper()
	return d.window("", "Mozilla Firefox", 60*time.Second)
}

// open navigates the host Firefox window to url in a new tab.
func (d *desktop) openTab(win, url string) {
	d.t.Helper()
	d.typeInto(win, "", "ctrl+t")
	time.Sleep(500 * time.Millisecond)
	d.typeInto(win, url, "Return")
}

func sameCert(a, b *x509.Certificate) bool { return a != nil && b != nil && a.Equal(b) }

// TestFirefoxPINMode: Firefox ESR with a fresh profile in which `csctoken
// register --firefox` put the module; the user types the PIN into
// Firefox's own "Password Required" dialog and picks the certificate in
// its "Ask Every Time" dialog: the first one offered on one site, the
// other one on a second site. The servers received the RSA and the EC
// certificate of the token.
func TestFirefoxPINMode(t *testing.T) {
	needDesktop(t)
	r := startRSSP(t)
	rsaCert := r.credential(t, service.CredentialSpec{KeyType: "rsa-2048", Description: "RSA key", Multisign: 5})
	ecCert := r.credential(t, service.CredentialSpec{KeyType: "ec-p256", Description: "EC key", Multisign: 5})
	d := newDesktop(t, r.config("pin"))
	d.run(password+"\n", testbin.CLI(t), "login", "--password-stdin")
	profile := d.newProfile(r, "pin", map[string]string{"security.default_personal_cert": `"Ask Every Time"`})
	siteA := startClientAuthServer(t, r.srv.Dir, "127.0.0.1", r.clientCAs)
	siteB := startClientAuthServer(t, r.srv.Dir, "localhost", r.clientCAs)

	begin := time.Now()
	ff := d.firefox(profile, siteA.URL, 3*time.Minute)
	// Firefox asks for the certificate (first one offered), then for the
	// token's PIN as it signs.
	got := d.answerDialogs(siteA, nil, 90*time.Second)
	t.Logf("site A got the %v certificate after %v", got.PublicKeyAlgorithm, time.Since(begin).Round(time.Millisecond))
	// The second site: the other certificate in the list.
	d.openTab(d.browserWindow(), siteB.URL)
	got2 := d.answerDialogs(siteB, []string{"Down", "Return"}, 60*time.Second)
	t.Logf("site B got the %v certificate after %v", got2.PublicKeyAlgorithm, time.Since(begin).Round(time.Millisecond))
	if !(sameCert(got, rsaCert) && sameCert(got2, ecCert)) && !(sameCert(got, ecCert) && sameCert(got2, rsaCert)) {
		d.screenshot("certs")
		t.Fatalf("the servers got %v and %v certificates (%s, %s), want the token's RSA and EC ones",
			got.PublicKeyAlgorithm, got2.PublicKeyAlgorithm, got.SerialNumber, got2.SerialNumber)
	}
	if ff.exited() {
		t.Fatalf("Firefox exited: %v\n%s", ff.err, tailText(ff.output(), 30))
	}
}

// answerDialogs plays the user at Firefox's dialogs until the server got
// a certificate: the certificate dialog (Ask Every Time, tab-modal in the
// browser window) with keys then Return, and the token's "Password
// Required" window with the PIN.
func (d *desktop) answerDialogs(s *clientAuthServer, keys []string, limit time.Duration) *x509.Certificate {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	picked := false
	for time.Now().Before(deadline) {
		select {
		case c := <-s.certs:
			return c
		case <-time.After(time.Second):
		}
		if out, _ := d.xdotool("search", "--onlyvisible", "--name", "Password Required"); out != "" {
			d.typeInto(strings.Fields(out)[0], pin, "Return")
			d.t.Logf("typed the PIN into Firefox's Password Required dialog")
			continue
		}
		// The dialog is tab-modal, not a window of its own: answer
		// until the PIN prompt or the certificate shows that it was
		// there (keys on the page before it opens do nothing).
		win := d.window("", "Mozilla Firefox", 30*time.Second)
		if len(keys) > 0 {
			// The certificate list is the dialog's first row, centred
			// at the top of the window: open it, then keys choose.
			geo, _ := d.xdotool("getwindowgeometry", "--shell", win)
			w := 1100
			for _, l := range strings.Fields(geo) {
				if v, ok := strings.CutPrefix(l, "WIDTH="); ok {
					fmt.Sscan(v, &w)
				}
			}
			_, _ = d.xdotool("mousemove", "--window", win, fmt.Sprint(w/2), "128", "click", "1")
			time.Sleep(500 * time.Millisecond)
		}
		d.typeInto(win, "", append(append([]string{}, keys...), "Return")...)
		if !picked {
			d.t.Logf("answering the certificate dialog with %v", append(keys, "Return"))
		}
		picked = true
	}
	return s.received(d, time.Second)
}
