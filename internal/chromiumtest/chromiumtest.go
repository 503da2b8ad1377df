// Package chromiumtest plays the user at an RSSP's browser pages in tests:
// a headless Chromium driven with chromedp signs in to the service, reads
// the consent page, types the credential's PIN and approves or denies.
//
// A host program under test opens the browser as on a desktop, through
// xdg-open, which honours $BROWSER outside a desktop session: Opener writes
// a $BROWSER script that appends each URL to a file and hands the lines to
// the test, which passes them to Drive. StripDesktop removes what would
// make xdg-open pick a desktop browser instead.
//
// A test that needs the browser calls Need first, then Start.
package chromiumtest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// Path is where Debian's chromium package puts the browser.
const Path = "/usr/bin/chromium"

// DefaultTimeout bounds one Drive.
const DefaultTimeout = 20 * time.Second

// RequireEnv is the environment variable that, set to 1, makes Need fail
// the test instead of skipping it when Chromium is not installed.
const RequireEnv = "CSCTOKEN_REQUIRE_CHROMIUM"

// Need skips the test when Chromium is not installed at Path, or fails it
// when RequireEnv is 1.
func Need(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s: %v (%s=1)", Path, err, RequireEnv)
		}
		t.Skipf("browser test skipped: %s not found (apt-get install chromium; %s=1 makes this a failure)", Path, RequireEnv)
	}
}

// Start starts a headless Chromium with a fresh user data directory that
// trusts the test server's TLS certificate (the PEM file tlsCert) by
// pinning its public key (--ignore-certificate-errors-spki-list, honoured
// with a user data directory): narrower than ignoring certificate errors.
// Besides chromedp's defaults (headless, no-first-run,
// disable-background-networking and disable-sync, among others) it runs
// without sandbox, GPU, component updates and QUIC; extra options, such as
// chromedp.WindowSize for screenshots, come last. The browser is started
// before Start returns, so that its start-up is not counted in a flow, and
// stops with t.Cleanup.
func Start(t testing.TB, tlsCert string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	pemBytes, err := os.ReadFile(tlsCert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("no PEM in %s", tlsCert)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Plan is what the user knows and does in the browser for one flow.
type Plan struct {
	User, Password string // the service account, for its login page
	PIN            string // typed where the consent page asks for it
	Deny           bool
	WantShown      []string // texts the consent page must show
	Timeout        time.Duration
}

// Outcome is how the browser's side of a flow ended.
type Outcome struct {
	Message string   // the loopback listener's page
	Pages   []string // the kinds of the pages seen: login, consent, done
	Consent string   // the consent page's text
}

// pageKindJS names the page shown: the service's login or consent page,
// or the loopback listener's answer ("" while loading).
const pageKindJS = `document.readyState !== 'complete' ? '' :
	document.getElementById('username') ? 'login' :
	document.getElementById('use-key') ? 'key' :
	document.getElementById('approve') ? 'consent' :
	(document.getElementById('message') && location.protocol === 'http:') ? 'done' :
	document.querySelector('main') ? 'other' : ''`

// Drive plays the user: it opens authURL, signs in, checks the consent
// page, types the PIN and approves or denies, until the loopback listener
// answers.
func Drive(bctx context.Context, authURL string, p Plan) (Outcome, error) {
	limit := p.Timeout
	if limit <= 0 {
		limit = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(bctx, limit)
	defer cancel()
	var out Outcome
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL)); err != nil {
		return out, fmt.Errorf("navigate: %w", err)
	}
	last := ""
	for {
		loc, kind, err := settle(ctx, last)
		if err != nil {
			return out, err
		}
		last = loc
		out.Pages = append(out.Pages, kind)
		switch kind {
		case "login":
			err = chromedp.Do(ctx,
				chromedp.SendKeys(chromedp.ID("username"), p.User),
				chromedp.SendKeys(chromedp.ID("password"), p.Password),
				chromedp.Click(chromedp.ID("sign-in")))
		case "consent":
			text, terr := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
			if terr != nil {
				return out, terr
			}
			out.Consent = text
			for _, s := range p.WantShown {
				if !strings.Contains(text, s) {
					return out, fmt.Errorf("the consent page does not show %q:\n%s", s, text)
				}
			}
			var steps []chromedp.Action[chromedp.Void]
			n, nerr := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#pin').length`))
			if nerr != nil {
				return out, nerr
			}
			if n > 0 && !p.Deny {
				steps = append(steps, chromedp.SendKeys(chromedp.ID("pin"), p.PIN))
			}
			button := "approve"
			if p.Deny {
				button = "deny"
			}
			err = chromedp.Do(ctx, append(steps, chromedp.Click(chromedp.ID(button)))...)
		case "key":
			// The security key step: the page's script asks the browser's
			// (virtual) authenticator, see VirtualAuthenticator.
			err = chromedp.Do(ctx, chromedp.Click(chromedp.ID("use-key")))
		case "done":
			out.Message, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("message")))
			return out, err
		default:
			text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			return out, fmt.Errorf("unexpected page at %s:\n%s", loc, text)
		}
		if err != nil {
			return out, fmt.Errorf("%s page: %w", kind, err)
		}
	}
}

// settle waits until the browser shows a loaded page other than the one at
// prev, and says which.
func settle(ctx context.Context, prev string) (loc, kind string, err error) {
	for {
		loc, err = chromedp.Run(ctx, chromedp.Location())
		if err == nil && loc != prev {
			kind, err = chromedp.Run(ctx, chromedp.Evaluate[string](pageKindJS))
			if err == nil && kind != "" {
				return loc, kind, nil
			}
		}
		select {
		case <-ctx.Done():
			return loc, "", fmt.Errorf("waiting for a page after %s (at %s): %w", prev, loc, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// desktopVars are the environment variables that StripDesktop removes:
// without them xdg-open sees no desktop session and runs $BROWSER.
var desktopVars = []string{"DISPLAY=", "WAYLAND_DISPLAY=", "BROWSER=", "DESKTOP_SESSION=", "XDG_CURRENT_DESKTOP=",
	"XDG_SESSION_DESKTOP=", "XDG_SESSION_TYPE=", "KDE_", "GNOME_", "MATE_", "XFCE_"}

// StripDesktop returns env without the variables that would make
// xdg-open use a desktop's browser instead of $BROWSER, and without those
// whose "NAME=value" entries start with one of the prefixes also (such as
// "HOME=" or "XDG_", for a test that gives the host program its own).
func StripDesktop(env []string, also ...string) []string {
	strip := append(desktopVars[:len(desktopVars):len(desktopVars)], also...)
	var out []string
outer:
	for _, kv := range env {
		for _, p := range strip {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}

// Opener is a $BROWSER for host programs: a script that appends each URL
// it is given to a file, which a goroutine watches.
type Opener struct {
	// Script is the value for $BROWSER.
	Script string
	// URLs receives each URL opened, in order.
	URLs <-chan string
}

// NewOpener writes the script into dir and watches its file until
// t.Cleanup.
func NewOpener(t testing.TB, dir string) *Opener {
	t.Helper()
	urlFile := filepath.Join(dir, "opened-urls")
	script := filepath.Join(dir, "browser.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '"+urlFile+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		var off int64
		var partial string
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(25 * time.Millisecond):
			}
			f, err := os.Open(urlFile)
			if err != nil {
				continue
			}
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				b, _ := io.ReadAll(f)
				off += int64(len(b))
				partial += string(b)
			}
			f.Close()
			for {
				line, rest, ok := strings.Cut(partial, "\n")
				if !ok {
					break
				}
				partial = rest
				select {
				case urls <- line:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return &Opener{Script: script, URLs: urls}
}

// VirtualAuthenticator enables the DevTools WebAuthn domain on the tab of
// ctx and adds a virtual CTAP2 authenticator (internal transport, resident
// keys, user verification that succeeds, presence simulated), which
// answers the pages' navigator.credentials calls as a FIDO2 security key
// would. It returns the authenticator's ID for the other WebAuthn.*
// commands.
func VirtualAuthenticator(t testing.TB, ctx context.Context) cdpwebauthn.AuthenticatorID {
	t.Helper()
	id, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (cdpwebauthn.AuthenticatorID, error) {
		if _, err := cdp.Call(ctx, tg, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
			return "", err
		}
		res, err := cdp.Call(ctx, tg, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
			Options: &cdpwebauthn.VirtualAuthenticatorOptions{
				Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
				Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true,
				HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
		if err != nil {
			return "", err
		}
		return res.AuthenticatorID, nil
	})
	if err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	return id
}

// RegisterKey registers the browser's (virtual) authenticator as a
// security key named name of the user, on the service's security keys page
// at keysURL (https://HOST/oauth2/keys), and logs the browser out of the
// service again (its cookies cleared).
func RegisterKey(bctx context.Context, keysURL, user, password, name string) error {
	ctx, cancel := context.WithTimeout(bctx, DefaultTimeout)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.Navigate(keysURL), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("sign-in")), chromedp.WaitVisible(chromedp.ID("key-name")),
		chromedp.SendKeys(chromedp.ID("key-name"), name), chromedp.Click(chromedp.ID("add-key")),
		chromedp.WaitVisible(chromedp.ID("use-key")), chromedp.Click(chromedp.ID("use-key")),
		chromedp.WaitVisible(chromedp.ID("notice")), chromedp.Navigate("about:blank"), ClearCookies)
	if err != nil {
		text, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
		return fmt.Errorf("register a security key: %w\n%s", err, text)
	}
	return nil
}

// ClearCookies ends the browser's sessions with every site.
var ClearCookies = chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
	_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
	return err
})
