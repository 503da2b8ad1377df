package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// libraryPaths are where register looks for libcsctoken.so without
// --library, after the directory of the csctoken executable and its ../lib.
var libraryPaths = []string{
	"/usr/lib/x86_64-linux-gnu/pkcs11/libcsctoken.so",
	"/usr/lib/aarch64-linux-gnu/pkcs11/libcsctoken.so",
	"/usr/lib64/pkcs11/libcsctoken.so",
	"/usr/lib/pkcs11/libcsctoken.so",
	"/usr/local/lib/libcsctoken.so",
	"/usr/lib/libcsctoken.so",
}

// registerOptions are the flags of csctoken register.
type registerOptions struct {
	nss                                  []string
	firefox, thunderbird, p11kit, remove bool
	java, library, name                  string
	policies                             []string // --mozilla-policy
}

// cmdRegister registers libcsctoken.so with NSS databases (modutil): the
// ones given, and with --firefox and --thunderbird those of the user's
// Firefox and Thunderbird profiles; with p11-kit (a .module file); for Java (a
// SunPKCS11 configuration file); or removes it.
// All are idempotent.
func (c *cli) cmdRegister(o registerOptions) error {
	nss, firefox, thunderbird, p11kit, java, remove, lib, name := o.nss, &o.firefox, &o.thunderbird, &o.p11kit, &o.java, &o.remove, &o.library, &o.name
	if len(nss) == 0 && !*firefox && !*thunderbird && !*p11kit && *java == "" && len(o.policies) == 0 {
		return usageError{"register: give --nss DIR, --firefox, --thunderbird, --p11-kit and/or --java FILE (or --mozilla-policy FILE)"}
	}
	if *name == "" || strings.ContainsAny(*name, "/\n\"") {
		return usageError{fmt.Sprintf("register: bad --name %q", *name)}
	}
	library := ""
	if !*remove {
		var err error
		if library, err = findLibrary(*lib); err != nil {
			return err
		}
	} else if *lib != "" {
		library, _ = filepath.Abs(*lib) // what to remove: it need not exist any more
	}
	var failed []string
	for _, dir := range nss {
		msg, err := registerNSS(dir, *name, library, *remove)
		if err != nil {
			failed = append(failed, "nss "+dir)
			fmt.Fprintf(c.stderr, "nss %s: %v\n", dir, err)
			continue
		}
		fmt.Fprintf(c.stdout, "nss %s: %s\n", dir, msg)
	}
	var apps []string
	if *firefox {
		apps = append(apps, "firefox")
	}
	if *thunderbird {
		apps = append(apps, "thunderbird")
	}
	if len(apps) > 0 {
		failed = append(failed, registerMozilla(c.stdout, c.stderr, apps, *name, library, *remove)...)
	}
	if *p11kit {
		file, msg, err := registerP11Kit(*name, library, *remove)
		if err != nil {
			failed = append(failed, "p11-kit")
			fmt.Fprintf(c.stderr, "p11-kit: %v\n", err)
		} else {
			fmt.Fprintf(c.stdout, "p11-kit %s: %s\n", file, msg)
		}
	}
	if *java != "" {
		file, msg, err := registerJava(*java, *name, library, *remove)
		if err != nil {
			failed = append(failed, "java")
			fmt.Fprintf(c.stderr, "java %s: %v\n", *java, err)
		} else {
			fmt.Fprintf(c.stdout, "java %s: %s\n", file, msg)
		}
	}
	failed = append(failed, c.registerPolicies(o.policies, *name, library, *remove)...)
	if len(failed) > 0 {
		return silentError{"register failed: " + strings.Join(failed, ", ")}
	}
	return nil
}

// javaMarker starts every SunPKCS11 configuration register writes: a file
// without it is the user's, never overwritten or removed.
const javaMarker = "# written by csctoken register --java"

// registerJava writes (or with remove deletes) a SunPKCS11 configuration
// for the module: the provider SunPKCS11-NAME on the first slot, for
// keytool/jarsigner -providerClass sun.security.pkcs11.SunPKCS11
// -providerArg FILE (or -addprovider SunPKCS11 -providerArg FILE).
func registerJava(file, name, library string, remove bool) (string, string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return file, "", err
	}
	old, err := os.ReadFile(abs)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return abs, "", err
	}
	exists := err == nil
	if exists && !bytes.HasPrefix(old, []byte(javaMarker)) {
		return abs, "", errors.New("the file exists and was not written by csctoken register; remove it or choose another path")
	}
	if remove {
		if !exists {
			return abs, "not registered", nil
		}
		if err := os.Remove(abs); err != nil {
			return abs, "", err
		}
		return abs, "removed", nil
	}
	// slotListIndex, not slot: slot IDs are the module's business; the
	// first slot is the first [[service]]. Java needs a certificate for
	// every key with the same CKA_ID, which the token has.
	want := []byte(fmt.Sprintf("%s\n# keytool -list -storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11 -providerArg %s\nname = %s\nlibrary = %s\nslotListIndex = 0\n",
		javaMarker, abs, name, library))
	if exists && bytes.Equal(old, want) {
		return abs, "already registered with " + library, nil
	}
	if err := writeFileAtomic(abs, want, 0o644); err != nil {
		return abs, "", err
	}
	return abs, "registered " + library + " (Java provider SunPKCS11-" + name + ")", nil
}

// writeFileAtomic replaces file with data through a temporary file in the
// same directory.
func writeFileAtomic(file string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".csctoken-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// findLibrary returns the absolute path of the module to register.
func findLibrary(flagValue string) (string, error) {
	if flagValue != "" {
		abs, err := filepath.Abs(flagValue)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("--library: %w", err)
		}
		return abs, nil
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			dir := filepath.Dir(exe)
			candidates = append(candidates, filepath.Join(dir, "libcsctoken.so"), filepath.Join(dir, "..", "lib", "libcsctoken.so"))
		}
	}
	candidates = append(candidates, libraryPaths...)
	for _, p := range candidates {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return filepath.Clean(p), nil
		}
	}
	return "", fmt.Errorf("libcsctoken.so not found (looked in %s); pass --library", strings.Join(candidates, ", "))
}

// nssModules reads the modules of an sql: database from its pkcs11.txt
// (without loading them, as modutil -list would): name to library.
func nssModules(dir string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "pkcs11.txt"))
	if err != nil {
		return nil, err
	}
	mods := map[string]string{}
	for _, block := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n\n") {
		var name, lib string
		sc := bufio.NewScanner(strings.NewReader(block))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), "=")
			switch strings.TrimSpace(k) {
			case "name":
				name = v
			case "library":
				lib = v
			}
		}
		if name != "" {
			mods[name] = lib
		}
	}
	return mods, nil
}

// registerNSS adds (or removes) the module in an NSS sql: database with
// modutil.
func registerNSS(dir, name, library string, remove bool) (string, error) {
	dir = strings.TrimPrefix(dir, "sql:")
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(abs, "cert9.db")); err != nil {
		return "", fmt.Errorf("no NSS sql: database here (%v); create one with: certutil -N -d sql:%s --empty-password", err, abs)
	}
	mods, err := nssModules(abs)
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("modutil"); err != nil {
		return "", fmt.Errorf("modutil not found (Debian: libnss3-tools): %w", err)
	}
	db := "sql:" + abs
	modutil := func(args ...string) error {
		out, err := exec.Command("modutil", append([]string{"-force", "-dbdir", db}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("modutil %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	current, present := mods[name]
	switch {
	case remove && !present:
		return fmt.Sprintf("%q is not registered", name), nil
	case remove:
		if err := modutil("-delete", name); err != nil {
			return "", err
		}
		return fmt.Sprintf("removed %q", name), nil
	case present && current == library:
		return fmt.Sprintf("%q is already registered with %s", name, library), nil
	case present:
		if err := modutil("-delete", name); err != nil {
			return "", err
		}
	}
	if err := modutil("-add", name, "-libfile", library); err != nil {
		return "", err
	}
	if present {
		return fmt.Sprintf("%q now uses %s (was %s)", name, library, current), nil
	}
	return fmt.Sprintf("registered %s as %q", library, name), nil
}

// p11kitDir is where p11-kit reads module files: the system registry as
// root (p11-kit ignores the user's then), the user's otherwise.
func p11kitDir() (string, error) {
	if os.Geteuid() == 0 {
		return "/etc/pkcs11/modules", nil
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cfg, "pkcs11", "modules"), nil
}

// registerP11Kit writes (or removes) NAME.module.
func registerP11Kit(name, library string, remove bool) (string, string, error) {
	dir, err := p11kitDir()
	if err != nil {
		return "", "", err
	}
	file := filepath.Join(dir, name+".module")
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return file, "", err
	}
	exists := err == nil
	if remove {
		if !exists {
			return file, "not registered", nil
		}
		if err := os.Remove(file); err != nil {
			return file, "", err
		}
		return file, "removed", nil
	}
	want := []byte("# written by csctoken register\nmodule: " + library + "\n")
	if exists && bytes.Equal(old, want) {
		return file, "already registered with " + library, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return file, "", err
	}
	if err := writeFileAtomic(file, want, 0o644); err != nil {
		return file, "", err
	}
	return file, "registered " + library, nil
}

// mozillaProfile is a Firefox or Thunderbird profile directory.
type mozillaProfile struct {
	app string // "firefox" or "thunderbird"
	dir string
}

// mozillaRoot is a directory where Firefox or Thunderbird keeps its
// profiles (and its profiles.ini).
type mozillaRoot struct {
	app, dir string
}

// mozillaRoots are the profile directories of Firefox and Thunderbird on
// Linux, for app ("firefox", "thunderbird" or "" for both): the XDG
// location of current releases ($XDG_CONFIG_HOME/mozilla/firefox, used by
// a new install since Firefox 147), the older dot directories, the Snap
// (which keeps them under $SNAP_USER_COMMON, ~/snap/NAME/common) and the
// Flatpak (whose XDG_CONFIG_HOME is ~/.var/app/ID/config), each in both
// spellings.
func mozillaRoots(app string) []mozillaRoot {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "~"
	}
	xdg := os.Getenv("XDG_CONFIG_HOME")
	if xdg == "" || !filepath.IsAbs(xdg) {
		xdg = filepath.Join(home, ".config")
	}
	h := func(p ...string) string { return filepath.Join(append([]string{home}, p...)...) }
	all := []mozillaRoot{
		{"firefox", filepath.Join(xdg, "mozilla", "firefox")},
		{"firefox", h(".mozilla", "firefox")},
		{"firefox", h("snap", "firefox", "common", ".mozilla", "firefox")},
		{"firefox", h("snap", "firefox", "common", ".config", "mozilla", "firefox")},
		{"firefox", h(".var", "app", "org.mozilla.firefox", ".mozilla", "firefox")},
		{"firefox", h(".var", "app", "org.mozilla.firefox", "config", "mozilla", "firefox")},
		{"firefox", h(".var", "app", "org.mozilla.firefox", ".config", "mozilla", "firefox")},
		{"thunderbird", filepath.Join(xdg, "thunderbird")},
		{"thunderbird", filepath.Join(xdg, "mozilla", "thunderbird")},
		{"thunderbird", h(".thunderbird")},
		{"thunderbird", h("snap", "thunderbird", "common", ".thunderbird")},
		{"thunderbird", h("snap", "thunderbird", "common", ".config", "thunderbird")},
		{"thunderbird", h(".var", "app", "org.mozilla.Thunderbird", ".thunderbird")},
		{"thunderbird", h(".var", "app", "org.mozilla.Thunderbird", "config", "thunderbird")},
		{"thunderbird", h(".var", "app", "org.mozilla.thunderbird", ".thunderbird")},
		{"thunderbird", h(".var", "app", "org.mozilla.thunderbird", "config", "thunderbird")},
	}
	var roots []mozillaRoot
	for _, r := range all {
		if app == "" || r.app == app {
			roots = append(roots, r)
		}
	}
	return roots
}

// registerMozilla registers (or removes) the module in every profile of
// apps ("firefox", "thunderbird"), one line per profile on stdout (errors
// on stderr), and returns what failed. A profile that the application
// never started has no NSS database yet: it gets an empty one (modutil
// -create, no password, as the application would make it), so a profile
// created for a new user before the first start has the token too. An
// application without any profile is a failure that names where it looked.
func registerMozilla(stdout, stderr io.Writer, apps []string, name, library string, remove bool) []string {
	var failed []string
	for _, app := range apps {
		roots := mozillaRoots(app)
		profiles, err := mozillaProfiles(roots)
		if err != nil {
			failed = append(failed, app)
			fmt.Fprintf(stderr, "%s: %v\n", app, err)
			continue
		}
		if len(profiles) == 0 {
			failed = append(failed, app)
			var dirs []string
			for _, r := range roots {
				dirs = append(dirs, r.dir)
			}
			fmt.Fprintf(stderr, "%s: no %s profile found (looked for profiles.ini and *.default* in %s); start %s once, or give --nss PROFILE_DIR\n",
				app, appTitle(app), strings.Join(dirs, ", "), appTitle(app))
			continue
		}
		for _, p := range profiles {
			created := false
			if _, err := os.Stat(filepath.Join(p.dir, "cert9.db")); err != nil {
				if remove {
					fmt.Fprintf(stdout, "%s %s: not registered (no cert9.db)\n", p.app, p.dir)
					continue
				}
				if err := createNSSDB(p.dir); err != nil {
					failed = append(failed, p.app+" "+p.dir)
					fmt.Fprintf(stderr, "%s %s: %v\n", p.app, p.dir, err)
					continue
				}
				created = true
			}
			msg, err := registerNSS(p.dir, name, library, remove)
			if err != nil {
				failed = append(failed, p.app+" "+p.dir)
				fmt.Fprintf(stderr, "%s %s: %v\n", p.app, p.dir, err)
				continue
			}
			if created {
				msg = "new NSS database (profile never started); " + msg
			}
			fmt.Fprintf(stdout, "%s %s: %s\n", p.app, p.dir, msg)
		}
	}
	return failed
}

func appTitle(app string) string {
	switch app {
	case "firefox":
		return "Firefox"
	case "thunderbird":
		return "Thunderbird"
	}
	return app
}

// createNSSDB makes an empty NSS sql: database without a password in dir
// (modutil -create), as Firefox and Thunderbird make one at their first
// start.
func createNSSDB(dir string) error {
	if _, err := exec.LookPath("modutil"); err != nil {
		return fmt.Errorf("modutil not found (Debian: libnss3-tools): %w", err)
	}
	out, err := exec.Command("modutil", "-force", "-create", "-dbdir", "sql:"+dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("creating an NSS database: modutil -create: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// mozillaProfiles finds the Firefox and Thunderbird profiles under roots:
// those profiles.ini names (Path=, relative to its directory when
// IsRelative=1) and the *.default* directories next to it, each once,
// existing directories only.
func mozillaProfiles(roots []mozillaRoot) ([]mozillaProfile, error) {
	var profiles []mozillaProfile
	seen := map[string]bool{}
	add := func(app, dir string) {
		dir = filepath.Clean(dir)
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() || seen[dir] {
			return
		}
		seen[dir] = true
		profiles = append(profiles, mozillaProfile{app, dir})
	}
	for _, r := range roots {
		ini, err := os.ReadFile(filepath.Join(r.dir, "profiles.ini"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return nil, err
		}
		for _, p := range iniProfilePaths(string(ini)) {
			if !filepath.IsAbs(p) {
				p = filepath.Join(r.dir, p)
			}
			add(r.app, p)
		}
		matches, _ := filepath.Glob(filepath.Join(r.dir, "*.default*"))
		for _, m := range matches {
			add(r.app, m)
		}
	}
	return profiles, nil
}

// iniProfilePaths returns the profile paths of a profiles.ini: Path= of
// each [Profile*] section, made relative (to the ini's directory) or
// absolute according to IsRelative= (default 1).
func iniProfilePaths(ini string) []string {
	var paths []string
	var inProfile bool
	var path string
	relative := true
	flush := func() {
		if inProfile && path != "" {
			if relative {
				path = filepath.FromSlash(path)
			}
			paths = append(paths, path)
		}
		path, relative = "", true
	}
	for _, line := range strings.Split(strings.ReplaceAll(ini, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			flush()
			inProfile = strings.HasPrefix(strings.ToLower(line), "[profile")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !inProfile {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Path":
			path = strings.TrimSpace(v)
		case "IsRelative":
			relative = strings.TrimSpace(v) != "0"
		}
	}
	flush()
	return paths
}
