package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/service"
)

// formUser plays the user at the service's pages without a browser: an
// HTTP client with a cookie jar that fills the login form and approves or
// denies the consent form (with the PIN), up to the loopback redirect.
type formUser struct {
	hc *http.Client

	mu       sync.Mutex
	deny     bool
	opened   int
	consents []string
	errs     []error
	wg       sync.WaitGroup
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// Open implements oauth.Opener.
func (u *formUser) Open(_ context.Context, raw string) error {
	u.mu.Lock()
	u.opened++
	deny := u.deny
	u.mu.Unlock()
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		if err := u.flow(raw, deny); err != nil {
			u.mu.Lock()
			u.errs = append(u.errs, err)
			u.mu.Unlock()
		}
	}()
	return nil
}

func (u *formUser) flow(raw string, deny bool) error {
	resp, err := u.hc.Get(raw)
	for range 6 {
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page, at := string(b), resp.Request.URL
		if at.Scheme == "http" {
			return nil // the loopback redirect URI
		}
		form := url.Values{}
		for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		action := "consent"
		switch {
		case strings.Contains(page, `id="username"`):
			action = "login"
			form.Set("username", user)
			form.Set("password", password)
		case strings.Contains(page, `id="approve"`):
			u.mu.Lock()
			u.consents = append(u.consents, html.UnescapeString(page))
			u.mu.Unlock()
			form.Set("action", "approve")
			if deny {
				form.Set("action", "deny")
			}
			form.Set("pin", pin)
		default:
			return fmt.Errorf("unexpected page at %s: %.300s", at, page)
		}
		resp, err = u.hc.PostForm(at.ResolveReference(&url.URL{Path: action}).String(), form)
	}
	return errors.New("too many pages")
}

func (u *formUser) setDeny(deny bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.deny = deny
}

// check waits for the flows and fails the test with their errors.
func (u *formUser) check(t *testing.T) {
	t.Helper()
	u.wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, err := range u.errs {
		t.Error(err)
	}
	u.errs = nil
}

func TestCLIOAuth2(t *testing.T) {
	useTempStore(t)
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	ecID, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: "ec-p256", PIN: pin, SCAL: 2, Description: "EC key"})
	if _, _, err := srv.App.Service.AddOAuthClient(context.Background(), service.ClientSpec{ID: "csctoken", Name: "csctoken desktop",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, Public: true}); err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &formUser{hc: &http.Client{Transport: srv.Client.Transport, Jar: jar, Timeout: 10 * time.Second}}
	old := browserOpener
	browserOpener = u
	t.Cleanup(func() { browserOpener = old })
	conf := writeConfig(t, srv.URL, filepath.Join(srv.Dir, "tls-ca.pem"), "credential_auth = \"browser\"\nclient_id = \"csctoken\"\n")
	data, _ := os.ReadFile(conf)
	text := strings.Replace(strings.Replace(string(data), `auth = "basic"`, `auth = "oauth2"`, 1), "username = \"alice\"\n", "", 1)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	runCLI(t, "", "status", "--config", conf).must(t).contains(t, "stdout",
		"auth oauth2 in the browser, client csctoken; signatures authorized in the browser", "login: not logged in")

	// Declined: the login fails and says so.
	u.setDeny(true)
	r := runCLI(t, "", "login", "--config", conf)
	u.check(t)
	if r.err == nil {
		t.Fatal("a declined login succeeded")
	}
	r.contains(t, "stderr", "declined or not completed in the browser", "open this URL in a browser")

	u.setDeny(false)
	runCLI(t, "", "login", "--config", conf).must(t).contains(t, "stdout", `Logged in to "Test RSSP"; access token valid until`)
	u.check(t)
	runCLI(t, "", "status", "--config", conf).must(t).contains(t, "stdout", "login: yes (oauth2); access token valid until", "credentials: 1")
	runCLI(t, "", "doctor", "--config", conf).must(t).contains(t, "stdout", "logged in: access token valid until",
		"protected authentication path", "private keys are visible without C_Login")

	// sign: C_Login without a PIN, the consent page for the hash.
	msg := filepath.Join(t.TempDir(), "doc.txt")
	if err := os.WriteFile(msg, []byte("signed in the browser"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCLI(t, "", "sign", "--config", conf, "--mechanism", "ecdsa", "--credential", ecID, "--in", msg, "--out", msg+".sig").must(t)
	u.check(t)
	u.mu.Lock()
	consents := u.consents
	u.mu.Unlock()
	if n := len(consents); n != 3 || !strings.Contains(consents[2], "csctoken.test — EC key") {
		t.Fatalf("%d consent pages; last:\n%s", n, consents[n-1])
	}
	u.setDeny(true)
	r = runCLI(t, "", "sign", "--config", conf, "--mechanism", "ecdsa", "--credential", ecID, "--in", msg, "--out", msg+".sig2")
	u.check(t)
	r.contains(t, "any", "declined, or not authorized in time, in the browser", "CKR_FUNCTION_CANCELED")

	runCLI(t, "", "logout", "--config", conf).must(t).contains(t, "stdout", "token revoked and forgotten")
	runCLI(t, "", "status", "--config", conf).must(t).contains(t, "stdout", "login: not logged in")
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.opened != 4 {
		t.Errorf("%d browser flows, want 4", u.opened)
	}
}
