package programs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegisterFirefox runs `csctoken register --firefox --thunderbird` in
// a home with a fake profile tree: two Firefox profiles (one named by
// profiles.ini under Profiles/, one *.default-release directory), a
// Firefox profile in the XDG location of current releases, a Thunderbird
// profile, each with an NSS database made by certutil, and a Firefox
// profile never started (no cert9.db), which gets a new database.
// certutil then lists the token's certificates in every database; a
// second run says "already registered" and leaves one entry; --remove
// (twice) undoes it.
func TestRegisterFirefox(t *testing.T) {
	need(t, "modutil", "certutil")
	f := newFixture(t)
	csctoken := cli(t)
	home := f.path("home")
	ff := filepath.Join(home, ".mozilla", "firefox")
	profiles := []string{
		filepath.Join(ff, "Profiles", "work"),
		filepath.Join(ff, "x1y2z3.default-release"),
		filepath.Join(f.path("config"), "mozilla", "firefox", "r5t6y7.default-esr"), // $XDG_CONFIG_HOME
		filepath.Join(home, ".thunderbird", "a1b2c3.default-release"),
	}
	fresh := filepath.Join(ff, "q9w8e7.default")
	for _, p := range append(profiles, fresh) {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f.write(t, "home/.mozilla/firefox/profiles.ini", []byte("[Install4F96D1932A9F858E]\nDefault=x1y2z3.default-release\nLocked=1\n\n"+
		"[Profile1]\nName=work\nIsRelative=1\nPath=Profiles/work\n\n"+
		"[Profile0]\nName=default-release\nIsRelative=1\nPath=x1y2z3.default-release\nDefault=1\n\n"+
		"[General]\nStartWithLastProfile=1\nVersion=2\n"))
	for _, p := range profiles {
		f.mustRun(t, "certutil", "-N", "-d", "sql:"+p, "--empty-password")
	}
	count := func(p string) int {
		data, err := os.ReadFile(filepath.Join(p, "pkcs11.txt"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(data), "library="+f.lib+"\n")
	}
	lines := func(out string) map[string]string {
		m := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			for _, p := range append(profiles, fresh) {
				if strings.Contains(l, " "+p+": ") {
					m[p] = l
				}
			}
		}
		return m
	}

	out := f.mustRun(t, csctoken, "register", "--firefox", "--thunderbird", "--library", f.lib)
	got := lines(out)
	if !strings.Contains(got[fresh], "new NSS database (profile never started); ") {
		t.Errorf("register --firefox, the profile without a database: %q\n%s", got[fresh], out)
	}
	profiles = append(profiles, fresh)
	for _, p := range profiles {
		if !strings.Contains(got[p], "registered "+f.lib+` as "csctoken"`) || count(p) != 1 {
			t.Errorf("register --firefox, %s: %q, %d modules\n%s", p, got[p], count(p), out)
		}
	}
	if !strings.HasPrefix(got[profiles[3]], "thunderbird ") || !strings.HasPrefix(got[profiles[0]], "firefox ") {
		t.Errorf("register --firefox: applications not named:\n%s", out)
	}
	for _, p := range profiles {
		certs := f.mustRun(t, "certutil", "-L", "-d", "sql:"+p, "-h", "all")
		for _, k := range []*key{f.rsa, f.ec} {
			if !strings.Contains(certs, tokenLabel+":"+k.label) {
				t.Errorf("%s: no %q in certutil -L -h all after register --firefox:\n%s", p, k.label, certs)
			}
		}
	}

	out = f.mustRun(t, csctoken, "register", "--firefox", "--thunderbird", "--library", f.lib)
	got = lines(out)
	for _, p := range profiles {
		if !strings.Contains(got[p], "already registered") || count(p) != 1 {
			t.Errorf("second register --firefox, %s: %q, %d modules\n%s", p, got[p], count(p), out)
		}
	}

	out = f.mustRun(t, csctoken, "register", "--firefox", "--thunderbird", "--remove")
	got = lines(out)
	for _, p := range profiles {
		if !strings.Contains(got[p], `removed "csctoken"`) || count(p) != 0 {
			t.Errorf("register --firefox --remove, %s: %q, %d modules\n%s", p, got[p], count(p), out)
		}
	}
	out = f.mustRun(t, csctoken, "register", "--firefox", "--thunderbird", "--remove")
	got = lines(out)
	for _, p := range profiles {
		if !strings.Contains(got[p], "not registered") {
			t.Errorf("second register --firefox --remove, %s: %q\n%s", p, got[p], out)
		}
	}
}
