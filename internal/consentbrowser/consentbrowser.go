//go:build linux

package consentbrowser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Supported reports whether Open can start a browser here (Linux only,
// for now).
const Supported = true

// Grace is how long the browser stays open after the flow ended, for the
// user to read its last page.
var Grace = 10 * time.Second

// WindowClass is the X11 window class of the consent browser's windows.
const WindowClass = "csctoken-consent"

// Opener opens URLs in a new Firefox instance; it implements
// oauth.Opener.
type Opener struct {
	// Exe is the browser executable (the host's own, e.g.
	// /usr/lib/firefox-esr/firefox-esr).
	Exe string
	// ProfileDir is the profile kept for consents; empty:
	// os.UserCacheDir()/csctoken/consent-firefox.
	ProfileDir string
	// CAFile, if set, is a PEM trust root the service's pages need (the
	// config's ca_file), imported into the profile with certutil.
	CAFile string
	Logger *slog.Logger
}

var (
	mu      sync.Mutex
	running = map[*proc]struct{}{}
)

// proc is one browser process started by Open.
type proc struct {
	cmd     *exec.Cmd
	tmp     string // a throwaway profile to remove, or ""
	done    chan struct{}
	endOnce sync.Once
}

// Open implements oauth.Opener: it starts the browser on url and returns
// once it runs; the browser ends Grace after ctx is done.
func (o Opener) Open(ctx context.Context, url string) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	profile, tmp, err := o.profile()
	if err != nil {
		return fmt.Errorf("consent browser profile: %w", err)
	}
	cmd := exec.Command(o.Exe, "--no-remote", "--new-instance", "--class", WindowClass, "--profile", profile, url)
	cmd.Env = env(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return fmt.Errorf("starting a separate %s for the consent page: %w", filepath.Base(o.Exe), err)
	}
	p := &proc{cmd: cmd, tmp: tmp, done: make(chan struct{})}
	mu.Lock()
	running[p] = struct{}{}
	mu.Unlock()
	log.Info("consent page opened in a separate browser process (the host program is the browser)",
		"browser", o.Exe, "pid", cmd.Process.Pid, "profile", profile)
	go func() {
		err := cmd.Wait()
		close(p.done)
		p.end(0)
		if err != nil {
			log.Debug("consent browser exited", "err", err.Error())
		}
	}()
	go func() {
		select {
		case <-p.done:
			return
		case <-ctx.Done():
		}
		select {
		case <-p.done:
		case <-time.After(Grace):
			p.end(2 * time.Second)
		}
	}()
	return nil
}

// end stops the process group (SIGTERM, then SIGKILL after wait) and
// removes a throwaway profile.
func (p *proc) end(wait time.Duration) {
	p.endOnce.Do(func() {
		mu.Lock()
		delete(running, p)
		mu.Unlock()
		pgid := p.cmd.Process.Pid
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(wait):
			}
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // what the browser left in its group
		if p.tmp != "" {
			select {
			case <-p.done:
			case <-time.After(time.Second):
			}
			os.RemoveAll(p.tmp)
		}
	})
}

// CloseAll ends every consent browser at once (C_Finalize: the host may
// exit next), waiting at most wait for them to go.
func CloseAll(wait time.Duration) {
	mu.Lock()
	ps := make([]*proc, 0, len(running))
	for p := range running {
		ps = append(ps, p)
	}
	mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.end(wait) }()
	}
	wg.Wait()
}

// env is the host's environment without what Firefox sets for itself and
// its children (the new instance is a program of its own).
func env(in []string) []string {
	var out []string
	for _, kv := range in {
		switch {
		case strings.HasPrefix(kv, "MOZ_CRASHREPORTER"), strings.HasPrefix(kv, "MOZ_LAUNCHED_CHILD="),
			strings.HasPrefix(kv, "MOZ_APP_RESTART="), strings.HasPrefix(kv, "MOZ_RESET_PROFILE_RESTART="),
			strings.HasPrefix(kv, "MOZ_PROFILER_STARTUP"), strings.HasPrefix(kv, "XRE_"),
			strings.HasPrefix(kv, "MOZ_MARIONETTE="), strings.HasPrefix(kv, "MOZ_REMOTE_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// prefs keep the consent browser to the page: no first-run pages, no
// default-browser question, no session restore, no telemetry.
const prefs = `// written by csctoken for its consent pages
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.startup.page", 0);
user_pref("startup.homepage_welcome_url", "");
user_pref("startup.homepage_welcome_url.additional", "");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("browser.tabs.warnOnClose", false);
user_pref("browser.warnOnQuit", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.auto", false);
user_pref("browser.crashReports.unsubmittedCheck.autoSubmit2", false);
user_pref("security.enterprise_roots.enabled", true);
`

// profile returns the profile directory for a new instance: the kept one
// unless a browser uses it, else a throwaway one (tmp, to remove).
func (o Opener) profile() (dir, tmp string, err error) {
	dir = o.ProfileDir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", "", err
		}
		dir = filepath.Join(cache, "csctoken", "consent-firefox")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	if inUse(dir) {
		if tmp, err = os.MkdirTemp("", "csctoken-consent-"); err != nil {
			return "", "", err
		}
		dir = tmp
	}
	if err := os.WriteFile(filepath.Join(dir, "user.js"), []byte(prefs), 0o600); err != nil {
		return "", tmp, errors.Join(err, os.RemoveAll(tmp))
	}
	o.importCA(dir)
	return dir, tmp, nil
}

// inUse reports whether a running Firefox holds the profile: its lock
// symlink names "ADDRESS:+PID" of a live process.
func inUse(dir string) bool {
	target, err := os.Readlink(filepath.Join(dir, "lock"))
	if err != nil {
		return false
	}
	_, pidText, ok := strings.Cut(target, ":+")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid <= 0 {
		return true // a lock we cannot read: leave the profile alone
	}
	return syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM)
}

// importCA adds CAFile to the profile's NSS database as a trust root for
// web sites (certutil from libnss3-tools; a warning in the log without it).
func (o Opener) importCA(dir string) {
	if o.CAFile == "" {
		return
	}
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		if o.Logger != nil {
			o.Logger.Warn("certutil not found (libnss3-tools): the consent browser may not trust the service's ca_file", "ca_file", o.CAFile)
		}
		return
	}
	db := "sql:" + dir
	if _, err := os.Stat(filepath.Join(dir, "cert9.db")); err != nil {
		_ = exec.Command(certutil, "-N", "-d", db, "--empty-password").Run()
	}
	out, err := exec.Command(certutil, "-A", "-d", db, "-n", "csctoken service CA", "-t", "C,,", "-a", "-i", o.CAFile).CombinedOutput()
	if err != nil && o.Logger != nil {
		o.Logger.Warn("importing ca_file into the consent browser's profile failed", "ca_file", o.CAFile, "err", err.Error(),
			"output", strings.TrimSpace(string(out)))
	}
}
