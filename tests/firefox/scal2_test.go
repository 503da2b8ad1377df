package firefox

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/consentbrowser"
	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestFirefoxBrowserModeSCAL2: browser mode with a SCAL 2 credential,
// whose consent binds the hash of this very handshake. C_Sign waits for
// the consent at most Firefox's 30 s handshake limit (an approval bound to
// a hash cannot serve the retry); the consent page opens in a Firefox of
// its own, shows the hash, and the user signs in and approves with the
// PIN. On a machine too loaded for the consent browser to start, and the
// user to answer, within the host's 30 s, the first handshake is lost and
// the reload asks again (a new hash): the test then answers the second
// page, whose sign-in the consent browser remembers.
func TestFirefoxBrowserModeSCAL2(t *testing.T) {
	needDesktop(t)
	r := startRSSP(t)
	cert := r.credential(t, service.CredentialSpec{KeyType: "ec-p256", Description: "SCAL2 key", SCAL: 2, Multisign: 1})
	credID := credentialID(t, r)
	d := newDesktop(t, r.config("browser"))
	d.run(password+"\n", testbin.CLI(t), "login", "--password-stdin")
	profile := d.newProfile(r, "scal2", map[string]string{"security.default_personal_cert": `"Select Automatically"`})
	site := startClientAuthServer(t, r.srv.Dir, "127.0.0.1", r.clientCAs)

	const lost = "the consent took longer than the host program waits for a TLS handshake"
	begin := time.Now()
	ff := d.firefox(profile, site.URL, 6*time.Minute)
	var got *x509.Certificate
	for attempt := 1; got == nil; attempt++ {
		if attempt > 3 {
			d.screenshot("no-client-cert")
			t.Fatalf("no signature after three consents; windows: %s", d.windows())
		}
		lostBefore := d.countLog(lost)
		// The consent window (a new one for a new consent: the last
		// one may still show its end page), until the module gives
		// this handshake up.
		var page string
		deadline := time.Now().Add(150 * time.Second)
		for page == "" && d.countLog(lost) == lostBefore {
			out, _ := d.xdotool("search", "--onlyvisible", "--class", consentbrowser.WindowClass)
			for _, id := range strings.Fields(out) {
				title, _ := d.xdotool("getwindowname", id)
				switch {
				case strings.Contains(title, "Sign in"):
					d.typeInto(id, user, "Tab")
					d.typeInto(id, password, "Return")
					time.Sleep(time.Second)
				case strings.Contains(title, "Authorize"):
					page = id
				}
			}
			if page == "" && time.Now().After(deadline) {
				d.screenshot("consent")
				t.Fatalf("attempt %d: no consent page; windows: %s", attempt, d.windows())
			}
			time.Sleep(200 * time.Millisecond)
		}
		if page != "" {
			d.typeInto(page, pin, "Return")
			t.Logf("attempt %d: approved on the consent page after %v", attempt, time.Since(begin).Round(time.Millisecond))
			select {
			case got = <-site.certs:
				continue
			case <-time.After(45 * time.Second):
			}
		}
		// Too slow for Firefox's 30 s: this handshake is lost (its
		// page abandoned); the reload is a new handshake and consent.
		t.Logf("attempt %d: the handshake was lost (Firefox's 30 s limit, a loaded machine); reloading", attempt)
		d.waitLog(lost, 60*time.Second)
		site.drainHellos()
		d.openSite(d.browserWindow(), site)
	}
	if !sameCert(got, cert) {
		t.Fatalf("the server got %s, want the token's SCAL 2 certificate", got.Subject)
	}
	t.Logf("the site authenticated with the SCAL 2 key after %v", time.Since(begin).Round(time.Millisecond))
	// One signature, made with a consent bound to its hash: the audit's
	// sign row carries the hash the consent named.
	if n := r.srv.AuditCount(t, "sign", credID); n != 1 {
		t.Errorf("sign audit rows: %d, want 1", n)
	}
	if n := r.srv.AuditCount(t, "oauth2 consent", credID); n < 1 {
		t.Errorf("oauth2 consent audit rows: %d", n)
	}
	if ff.exited() {
		t.Fatalf("Firefox exited: %v\n%s", ff.err, tailText(ff.output(), 30))
	}
}
