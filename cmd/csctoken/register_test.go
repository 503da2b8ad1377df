package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestIniProfilePaths(t *testing.T) {
	ini := "[Install4F96D1932A9F858E]\r\nDefault=abcd.default-release\r\nLocked=1\r\n\r\n" +
		"[Profile1]\r\nName=default\r\nIsRelative=1\r\nPath=Profiles/x1.default\r\nDefault=1\r\n\r\n" +
		"[Profile0]\r\nName=work\r\nIsRelative=0\r\nPath=/srv/profiles/work\r\n\r\n" +
		"[General]\r\nStartWithLastProfile=1\r\nPath=not-a-profile\r\n"
	got := iniProfilePaths(ini)
	want := []string{filepath.Join("Profiles", "x1.default"), "/srv/profiles/work"}
	if !slices.Equal(got, want) {
		t.Errorf("iniProfilePaths = %q, want %q", got, want)
	}
	if got := iniProfilePaths(""); len(got) != 0 {
		t.Errorf("empty ini: %q", got)
	}
}

func TestMozillaProfiles(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	mk := func(p string) string {
		t.Helper()
		p = filepath.Join(home, p)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ff := mk(".mozilla/firefox")
	release := mk(".mozilla/firefox/abcd.default-release")
	old := mk(".mozilla/firefox/efgh.default")
	named := mk(".mozilla/firefox/Profiles/work")
	mk(".mozilla/firefox/Crash Reports")
	outside := t.TempDir()
	tb := mk(".thunderbird/ijkl.default")
	ini := "[Profile0]\nName=default-release\nIsRelative=1\nPath=abcd.default-release\n\n" +
		"[Profile1]\nName=work\nIsRelative=1\nPath=Profiles/work\n\n" +
		"[Profile2]\nName=elsewhere\nIsRelative=0\nPath=" + outside + "\n\n" +
		"[Profile3]\nName=gone\nIsRelative=1\nPath=deleted.default\n"
	if err := os.WriteFile(filepath.Join(ff, "profiles.ini"), []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	xdg := mk(".config/mozilla/firefox/Profiles/q1w2e3.default-esr")
	if err := os.WriteFile(filepath.Join(home, ".config/mozilla/firefox/profiles.ini"),
		[]byte("[Profile0]\nName=default-esr\nIsRelative=1\nPath=Profiles/q1w2e3.default-esr\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	snap := mk("snap/firefox/common/.mozilla/firefox/s1.default")
	flatpak := mk(".var/app/org.mozilla.firefox/config/mozilla/firefox/f1.default-release")
	tbXDG := mk(".config/thunderbird/t1.default-release")
	got, err := mozillaProfiles(mozillaRoots(""))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, p := range got {
		dirs = append(dirs, p.app+" "+p.dir)
	}
	want := []string{"firefox " + xdg, "firefox " + release, "firefox " + named, "firefox " + outside, "firefox " + old,
		"firefox " + snap, "firefox " + flatpak, "thunderbird " + tbXDG, "thunderbird " + tb}
	if !slices.Equal(dirs, want) {
		t.Errorf("profiles:\n%s\nwant:\n%s", strings.Join(dirs, "\n"), strings.Join(want, "\n"))
	}

	t.Setenv("HOME", t.TempDir())
	if got, err := mozillaProfiles(mozillaRoots("")); err != nil || len(got) != 0 {
		t.Errorf("no profiles: %v, %v", got, err)
	}
}

func TestRegisterFirefoxNoProfile(t *testing.T) {
	useTempStore(t)
	t.Setenv("HOME", t.TempDir())
	lib := filepath.Join(t.TempDir(), "libcsctoken.so")
	if err := os.WriteFile(lib, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "register", "--firefox", "--thunderbird", "--library", lib)
	home, _ := os.UserHomeDir()
	for _, want := range []string{"firefox: no Firefox profile found", "thunderbird: no Thunderbird profile found",
		filepath.Join(home, ".config/mozilla/firefox"), filepath.Join(home, ".mozilla/firefox"),
		filepath.Join(home, "snap/firefox/common/.mozilla/firefox"), filepath.Join(home, ".var/app/org.mozilla.firefox/.mozilla/firefox"),
		filepath.Join(home, ".thunderbird")} {
		if r.err == nil || !strings.Contains(r.stderr, want) {
			t.Errorf("register --firefox --thunderbird without profiles: %v, no %q\nstdout: %s\nstderr: %s", r.err, want, r.stdout, r.stderr)
		}
	}
}

// TestRegisterJava: the SunPKCS11 configuration is written once, kept on a
// second run, rewritten for another library, removed, and a file that
// csctoken did not write is neither overwritten nor removed.
func TestRegisterJava(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "csctoken-java.cfg")
	user := filepath.Join(dir, "mine.cfg")
	if err := os.WriteFile(user, []byte("name = other\nlibrary = /x.so\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name, file, library string
		remove              bool
		want                string // message prefix; "" for an error
	}{
		{"write", file, "/opt/a/libcsctoken.so", false, "registered /opt/a/libcsctoken.so (Java provider SunPKCS11-csctoken)"},
		{"again", file, "/opt/a/libcsctoken.so", false, "already registered"},
		{"other library", file, "/opt/b/libcsctoken.so", false, "registered /opt/b/libcsctoken.so"},
		{"user's file kept", user, "/opt/a/libcsctoken.so", false, ""},
		{"user's file not removed", user, "", true, ""},
		{"remove", file, "", true, "removed"},
		{"remove again", file, "", true, "not registered"},
	}
	for _, st := range steps {
		_, msg, err := registerJava(st.file, "csctoken", st.library, st.remove)
		switch {
		case st.want == "" && err == nil:
			t.Fatalf("%s: no error (%q)", st.name, msg)
		case st.want != "" && (err != nil || !strings.HasPrefix(msg, st.want)):
			t.Fatalf("%s: %q, %v; want %q", st.name, msg, err, st.want)
		}
		if st.name == "other library" {
			data, _ := os.ReadFile(file)
			if !strings.Contains(string(data), "\nlibrary = /opt/b/libcsctoken.so\n") || !strings.Contains(string(data), "\nslotListIndex = 0\n") ||
				!strings.Contains(string(data), "\nname = csctoken\n") {
				t.Fatalf("config:\n%s", data)
			}
		}
	}
	if data, _ := os.ReadFile(user); string(data) != "name = other\nlibrary = /x.so\n" {
		t.Fatalf("the user's file changed: %q", data)
	}
}
