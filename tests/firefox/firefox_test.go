package firefox

import (
	"context"
	"crypto/x509"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/consentbrowser"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/authserver"
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

func startRSSP(t *testing.T) *rssp { return startNamedRSSP(t, "") }

// startNamedRSSP starts a service whose CAs are named after name (the
// default test name when empty).
func startNamedRSSP(t *testing.T, name string) *rssp {
	t.Helper()
	srv := rssptest.Start(t, rssptest.Options{Name: name})
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
	return r.serviceConfig("Test RSSP", credentialAuth)
}

// serviceConfig is the module config's [[service]] table for r.
func (r *rssp) serviceConfig(name, credentialAuth string) string {
	return fmt.Sprintf(`[[service]]
name = %q
url = %q
auth = "basic"
username = %q
client_id = %q
credential_auth = %q
ca_file = %q
timeout = "20s"
`, name, r.srv.URL, user, clientID, credentialAuth, filepath.Join(r.srv.Dir, "tls-ca.pem"))
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
func (d *desktop) newProfile(r *rssp, name string, prefs map[string]string, more ...*rssp) string {
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
	for i, rs := range append([]*rssp{r}, more...) {
		d.run("", "certutil", "-A", "-d", "sql:"+dir, "-n", fmt.Sprintf("test site CA %d", i+1), "-t", "C,,", "-a", "-i", filepath.Join(rs.srv.Dir, "tls-ca.pem"))
	}
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
	return d.window("", "Mozilla Firefox", 120*time.Second)
}

// open navigates the host Firefox window to url in a new tab.
func (d *desktop) openTab(win, url string) {
	d.t.Helper()
	d.typeInto(win, "", "ctrl+t")
	time.Sleep(time.Second)
	// The address bar, focused for sure before typing (keys typed while
	// the new tab opens are lost).
	d.typeInto(win, "", "ctrl+l")
	time.Sleep(500 * time.Millisecond)
	d.typeInto(win, url, "Return")
}

// openSite opens s in a new tab and waits until s saw the handshake
// start; keys typed while the new tab or the address bar takes focus can
// be lost (a URL without its "https://" loads as plain HTTP), so the
// address is typed again, up to three times. The ClientHello is put back
// for answerDialogs.
func (d *desktop) openSite(win string, s *clientAuthServer) {
	d.t.Helper()
	d.openTab(win, s.URL)
	for try := 1; ; try++ {
		select {
		case <-s.hellos:
			select {
			case s.hellos <- struct{}{}:
			default:
			}
			return
		case <-time.After(15 * time.Second):
		}
		if try == 3 {
			d.screenshot("no-handshake")
			d.t.Fatalf("%s saw no handshake after the address was typed %d times; windows: %s", s.URL, try, d.windows())
		}
		d.t.Logf("%s saw no handshake: typing the address again", s.URL)
		d.typeInto(win, "", "ctrl+l")
		time.Sleep(500 * time.Millisecond)
		d.typeInto(win, s.URL, "Return")
	}
}

func sameCert(a, b *x509.Certificate) bool { return a != nil && b != nil && a.Equal(b) }

// TestFirefoxPINMode: Firefox ESR with a fresh profile in which `csctoken
// register --firefox` put the module; the user types the PIN into
// Firefox's own "Password Required" dialog and picks the certificate in
// its "Ask Every Time" dialog. The RSA and the EC key come from two
// services with CAs of their own (two slots of the module), and each site
// asks for a certificate from one of them (the CertificateRequest's
// certificate_authorities), so Firefox's dialog offers the one certificate
// that site accepts: site A receives the RSA certificate and site B the
// EC one in every run. (Picking the second entry of one list with the
// keyboard worked only about three runs in four: the dialog at times kept
// its first entry.)
func TestFirefoxPINMode(t *testing.T) {
	needDesktop(t)
	rsaRSSP, ecRSSP := startNamedRSSP(t, "csctoken test RSA"), startNamedRSSP(t, "csctoken test EC")
	rsaCert := rsaRSSP.credential(t, service.CredentialSpec{KeyType: "rsa-2048", Description: "RSA key", Multisign: 5})
	ecCert := ecRSSP.credential(t, service.CredentialSpec{KeyType: "ec-p256", Description: "EC key", Multisign: 5})
	d := newDesktop(t, rsaRSSP.serviceConfig("RSA service", "pin")+"\n"+ecRSSP.serviceConfig("EC service", "pin"))
	d.run(password+"\n"+password+"\n", testbin.CLI(t), "login", "--password-stdin")
	profile := d.newProfile(rsaRSSP, "pin", map[string]string{"security.default_personal_cert": `"Ask Every Time"`}, ecRSSP)
	siteA := startClientAuthServer(t, rsaRSSP.srv.Dir, "127.0.0.1", rsaRSSP.clientCAs)
	siteB := startClientAuthServer(t, ecRSSP.srv.Dir, "localhost", ecRSSP.clientCAs)

	begin := time.Now()
	ff := d.firefox(profile, siteA.URL, 4*time.Minute)
	// Firefox asks for the certificate, then for the token's PIN as it
	// signs.
	got := d.tryDialogs(siteA, nil, 90*time.Second)
	if got == nil {
		// Seen about once in three runs on a loaded machine: the first
		// answer reached Firefox before its dialog, which then sent no
		// certificate and remembered that for the site (a blank page).
		// The user would restart Firefox: so does the test, once, with
		// the profile's remembered client-auth decisions removed.
		d.screenshot("first-attempt")
		t.Logf("site A got no certificate in 90 s; Firefox is started again once")
		ff.kill()
		for end := time.Now().Add(10 * time.Second); !ff.exited() && time.Now().Before(end); {
			time.Sleep(100 * time.Millisecond)
		}
		remembered, _ := filepath.Glob(filepath.Join(profile, "ClientAuthRememberList*"))
		for _, f := range remembered {
			_ = os.Remove(f)
		}
		siteA.drainHellos()
		ff = d.firefox(profile, siteA.URL, 4*time.Minute)
		got = d.answerDialogs(siteA, nil, 150*time.Second)
	}
	t.Logf("site A got the %v certificate after %v", got.PublicKeyAlgorithm, time.Since(begin).Round(time.Millisecond))
	d.openSite(d.browserWindow(), siteB)
	got2 := d.answerDialogs(siteB, nil, 90*time.Second)
	t.Logf("site B got the %v certificate after %v", got2.PublicKeyAlgorithm, time.Since(begin).Round(time.Millisecond))
	if !sameCert(got, rsaCert) || !sameCert(got2, ecCert) {
		d.screenshot("certs")
		t.Fatalf("site A got %v (%s), site B got %v (%s): want the token's RSA certificate on A and its EC certificate on B",
			got.PublicKeyAlgorithm, got.Subject, got2.PublicKeyAlgorithm, got2.Subject)
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
	if c := d.tryDialogs(s, keys, limit); c != nil {
		return c
	}
	return s.received(d, time.Second)
}

// tryDialogs is answerDialogs that returns nil when the server got no
// certificate within limit.
func (d *desktop) tryDialogs(s *clientAuthServer, keys []string, limit time.Duration) *x509.Certificate {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	picked, answered := false, time.Time{}
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
		// The dialog is tab-modal, not a window of its own: it opens
		// shortly after the handshake started (the server saw the
		// ClientHello); answer then, and again after each new
		// handshake (Firefox's error page retries with Return).
		select {
		case <-s.hellos:
			time.Sleep(3 * time.Second)
		case <-time.After(time.Second):
			if picked && time.Since(answered) < 10*time.Second {
				continue
			}
		}
		win := d.window("", "Mozilla Firefox", 120*time.Second)
		// The certificate list has the focus when the dialog opens:
		// keys move its choice (a click meant to open it could land
		// outside a dialog not yet drawn and take the focus away).
		d.typeInto(win, "", append(append([]string{}, keys...), "Return")...)
		if !picked {
			d.t.Logf("answering the certificate dialog with %v", append(keys, "Return"))
		}
		picked, answered = true, time.Now()
	}
	select {
	case c := <-s.certs:
		return c
	case <-time.After(time.Second):
		return nil
	}
}

// TestFirefoxBrowserMode: browser mode with Firefox as the user's browser
// ($BROWSER, and the host itself). The module must not open the consent
// page as a tab of the Firefox whose socket thread waits on C_Sign: it
// opens a Firefox of its own, and C_Sign answers within seconds, so that
// the host's other tabs keep loading while the consent waits. The user is
// slow (40 s, past Firefox's 30 s handshake limit): the first attempt
// fails, and the reload signs with what was approved, without a second
// consent page. Then, with a consent pending again in a new Firefox,
// quitting it takes under 5 s, leaves no process and no crash report.
func TestFirefoxBrowserMode(t *testing.T) {
	needDesktop(t)
	r := startRSSP(t)
	cert := r.credential(t, service.CredentialSpec{KeyType: "ec-p256", Description: "EC key", Multisign: 10})
	d := newDesktop(t, r.config("browser"))
	d.run(password+"\n", testbin.CLI(t), "login", "--password-stdin")
	profile := d.newProfile(r, "browser", map[string]string{"security.default_personal_cert": `"Select Automatically"`})
	site := startClientAuthServer(t, r.srv.Dir, "127.0.0.1", r.clientCAs)
	other := startPlainServer(t)
	const opened = "consent page opened in a separate browser process"
	// baseQuit is how long Firefox takes to quit without a consent
	// pending, on this machine now (about 4 s on two loaded cores).
	baseQuit := 5 * time.Second

	t.Run("slow user, other tabs, reload", func(t *testing.T) {
		d.t = t
		begin := time.Now()
		ff := d.firefox(profile, site.URL, 4*time.Minute)
		login := d.window(consentbrowser.WindowClass, "Sign in", 150*time.Second)
		shown := time.Now()
		t.Logf("consent page (sign-in) shown in its own Firefox after %v", shown.Sub(begin).Round(time.Millisecond))
		d.waitLog("C_Sign does not wait for the consent page", 30*time.Second)
		if out := d.run("", testbin.CLI(t), "status"); !strings.Contains(out, "consent: the page for credential") {
			t.Errorf("csctoken status does not say that a consent page waits:\n%s", out)
		}

		// The host is not blocked: another tab loads meanwhile.
		host := d.browserWindow()
		d.openTab(host, other.URL)
		select {
		case <-other.hits:
			t.Logf("another tab loaded while the consent waits, %v after it opened", time.Since(shown).Round(time.Millisecond))
		case <-time.After(30 * time.Second):
			d.screenshot("other-tab")
			t.Fatalf("the host's other tab did not load while the consent waits; windows: %s", d.windows())
		}

		// The user signs in to the service, then approves, 40 s after
		// the page opened.
		d.typeInto(login, user, "Tab")
		d.typeInto(login, password, "Return")
		approve := d.window(consentbrowser.WindowClass, "Authorize", 30*time.Second)
		time.Sleep(time.Until(shown.Add(40 * time.Second)))
		d.typeInto(approve, pin, "Return")
		d.waitLog("approved in the browser", 30*time.Second)
		t.Logf("approved %v after the page opened", time.Since(shown).Round(time.Millisecond))
		if out := d.run("", testbin.CLI(t), "status"); !strings.Contains(out, "consent: approved in the browser for credential") {
			t.Errorf("csctoken status does not say that the approval waits for the retry:\n%s", out)
		}

		// The reload signs at once with the kept approval.
		reload := time.Now()
		site.drainHellos()
		d.openSite(host, site)
		got := site.received(d, 30*time.Second)
		if !sameCert(got, cert) {
			t.Fatalf("the server got %s, want the token's certificate", got.Subject)
		}
		t.Logf("the reload authenticated with the token's certificate after %v", time.Since(reload).Round(time.Millisecond))
		if n := d.countLog(opened); n != 1 {
			t.Errorf("consent pages opened: %d, want 1", n)
		}
		if n := r.srv.AuditCount(t, "sign", credentialID(t, r)); n < 1 {
			t.Errorf("sign audit rows: %d", n)
		}
		baseQuit = d.quit(ff, 15*time.Second)
		t.Logf("Firefox quit %v after ctrl+q (no consent pending)", baseQuit.Round(time.Millisecond))
	})

	t.Run("quit while the consent waits", func(t *testing.T) {
		d.t = t
		ff := d.firefox(profile, site.URL, 3*time.Minute)
		// The consent browser's profile remembers the sign-in: the
		// page asks for the PIN at once.
		d.window(consentbrowser.WindowClass, "Authorize", 150*time.Second)
		d.waitLog("C_Sign does not wait for the consent page", 30*time.Second)
		// Under 5 s, or no slower than without a consent (plus 1 s) on
		// a machine where quitting alone takes longer.
		took := d.quit(ff, max(5*time.Second, baseQuit+time.Second))
		t.Logf("Firefox quit %v after ctrl+q with a consent pending (%v without)", took.Round(time.Millisecond), baseQuit.Round(time.Millisecond))
		deadline := time.Now().Add(5 * time.Second)
		for len(processesWith("csctoken-consent")) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if pids := processesWith("csctoken-consent"); len(pids) > 0 {
			t.Errorf("consent browser processes left after the host quit: %v", pids)
		}
		d.noCrashReports(profile)

		// Firefox exits without C_Finalize: the module cannot say that
		// nobody waits for this consent any more, but the call it held
		// open to the service while it waited closed with the process,
		// and the service abandoned the request: the page, wherever it
		// is still open, says so and can no longer be approved (the
		// page's own poll is tested in a browser in rssp/oauth's
		// TestBrowser).
		credID := credentialID(t, r)
		deadline = time.Now().Add(15 * time.Second)
		for r.srv.AuditCount(t, "oauth2 abandon", credID) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the service did not abandon the consent within 15 s of the host's exit")
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("the service abandoned the consent %v after ctrl+q", (took + time.Since(deadline.Add(-15*time.Second))).Round(100*time.Millisecond))
		authURL := d.lastAuthURL()
		resp, err := r.srv.Client.Get(authURL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusGone || !strings.Contains(html.UnescapeString(string(body)), authserver.AbandonedMessage) {
			t.Errorf("the consent URL after the host quit: %d, want 410 saying %q:\n%s", resp.StatusCode, authserver.AbandonedMessage, body)
		}
		t.Logf("after the host quit, the consent's URL says: %q", authserver.AbandonedMessage)
	})
}

var authURLRE = regexp.MustCompile(`oauth: authorization in the browser.* url="?(https://[^"\s]+)`)

// lastAuthURL is the authorization URL of the last browser flow the module
// logged.
func (d *desktop) lastAuthURL() string {
	d.t.Helper()
	b, _ := os.ReadFile(d.log)
	m := authURLRE.FindAllStringSubmatch(string(b), -1)
	if len(m) == 0 {
		d.t.Fatalf("no authorization URL in the module log:\n%s", tailText(string(b), 30))
	}
	return m[len(m)-1][1]
}

// credentialID is the ID of the user's only credential.
func credentialID(t *testing.T, r *rssp) string {
	t.Helper()
	tok := r.srv.Login(t, user, password)
	var list csc.CredentialsListResponse
	rssptest.Must(t, r.srv.Call(t, "credentials/list", tok, csc.CredentialsListRequest{})).Decode(t, &list)
	if len(list.CredentialIDs) == 0 {
		t.Fatal("no credential")
	}
	return list.CredentialIDs[0]
}

// quit quits Firefox as the user does (ctrl+q in its window) and fails
// the test unless it exits within limit, without leaving a process in
// its group.
func (d *desktop) quit(ff *group, limit time.Duration) time.Duration {
	d.t.Helper()
	win := d.browserWindow()
	start := time.Now()
	d.typeInto(win, "", "ctrl+q")
	// Firefox closes its windows as soon as it starts to quit. One still
	// open 2 s later did not get the keys (seen in CI: a synthetic ctrl+q
	// lost while both Firefox processes had windows): press again and
	// time from there; a hang in shutdown still fails below.
	for again := 0; again < 2; again++ {
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && !ff.exited(); {
			time.Sleep(100 * time.Millisecond)
		}
		if ff.exited() {
			break
		}
		if _, err := d.xdotool("getwindowname", win); err != nil {
			break // the window closed: Firefox is quitting
		}
		d.t.Logf("Firefox's window is still open 2 s after ctrl+q: pressing it again")
		again := time.Now()
		if _, err := d.xdotool("windowactivate", "--sync", win); err != nil {
			_, _ = d.xdotool("windowfocus", "--sync", win)
		}
		if _, err := d.xdotool("key", "--window", win, "ctrl+q"); err != nil {
			if _, gone := d.xdotool("getwindowname", win); gone != nil {
				// The window closed between the look and the press: the
				// first press was taken; keep timing from it.
				d.t.Logf("the window closed before the second press: Firefox was quitting")
				break
			}
			d.t.Fatalf("xdotool key ctrl+q: %v", err)
		}
		start = again
	}
	select {
	case <-ff.done:
	case <-time.After(limit):
		d.screenshot("quit")
		threads := threadStates(ff.cmd.Process.Pid)
		select {
		case <-ff.done:
		case <-time.After(90 * time.Second):
		}
		d.t.Fatalf("Firefox did not exit within %v of ctrl+q (exited: %v after %v); windows: %s; its threads then:\n%s",
			limit, ff.exited(), time.Since(start).Round(time.Millisecond), d.windows(), threads)
	}
	took := time.Since(start)
	if err := syscall.Kill(-ff.cmd.Process.Pid, 0); err == nil {
		time.Sleep(2 * time.Second)
		if err := syscall.Kill(-ff.cmd.Process.Pid, 0); err == nil {
			d.t.Errorf("processes of Firefox's group left 2 s after it exited")
		}
	}
	return took
}

// noCrashReports fails the test when Firefox wrote a crash report.
func (d *desktop) noCrashReports(profile string) {
	d.t.Helper()
	for _, dir := range []string{filepath.Join(profile, "minidumps"),
		filepath.Join(d.home, ".config", "mozilla", "firefox", "Crash Reports", "pending"),
		filepath.Join(d.home, ".mozilla", "firefox", "Crash Reports", "pending")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".dmp") || strings.HasSuffix(e.Name(), ".extra") {
				d.t.Errorf("crash report %s", filepath.Join(dir, e.Name()))
			}
		}
	}
}

// threadStates lists the threads of pid with their state and kernel wait
// channel, for a process that does not exit.
func threadStates(pid int) string {
	var b strings.Builder
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s/", pid, t.Name())
		comm, _ := os.ReadFile(dir + "comm")
		wchan, _ := os.ReadFile(dir + "wchan")
		sc, _ := os.ReadFile(dir + "syscall")
		fmt.Fprintf(&b, "%s %s wchan=%s syscall=%s\n", t.Name(), strings.TrimSpace(string(comm)), wchan, strings.Fields(string(sc) + " ?")[0])
	}
	return b.String()
}
