package packages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLintian runs lintian on both .debs: no error. The warnings kept are
// listed, with the reasons, in installer/README.md; a new kind of warning
// fails here until it is listed there too.
func TestLintian(t *testing.T) {
	gate(t, "lintian")
	debs := []string{dist(t, "csctoken_*_amd64.deb"), dist(t, "rssp_*_amd64.deb")}
	r := run(t, 5*time.Minute, nil, "", "lintian", append([]string{"--tag-display-limit", "0", "--allow-root"}, debs...)...)
	readme, err := os.ReadFile(filepath.Join(rootDir, "installer", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(r.Stdout, "\n") {
		kind, rest, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		_, rest, _ = strings.Cut(rest, ": ") // after the package name
		tag, _, _ := strings.Cut(rest, " ")
		switch kind {
		case "E":
			t.Errorf("lintian error: %s", line)
		case "W":
			if !strings.Contains(string(readme), "`"+tag+"`") {
				t.Errorf("lintian warning not explained in installer/README.md: %s", line)
			}
		}
	}
	if r.Err != nil && !strings.Contains(r.Stdout, "E: ") {
		t.Errorf("lintian: %v", r)
	}
	t.Logf("lintian:\n%s", r.Stdout)
}

// TestRPM checks the .rpms with rpm: the file lists, the scriptlets, and an
// install into a scratch root (rpm --root, without dependencies and
// scriptlets: the root has no shell) that puts every file where the list
// says, then an erase that leaves none.
func TestRPM(t *testing.T) {
	gate(t, "rpm", "sh")
	want := map[string][]string{
		"csctoken-*.x86_64.rpm": {"/usr/lib64/pkcs11/libcsctoken.so", "/usr/bin/csctoken", moduleFile, systemConfig,
			"/usr/share/man/man1/csctoken.1.gz", "/usr/share/licenses/csctoken/copyright"},
		"rssp-*.x86_64.rpm": {"/usr/bin/rssp", unitFile, "/usr/lib/sysusers.d/rssp.conf", rsspConfig, "/usr/share/man/man8/rssp.8.gz"},
	}
	scripts := map[string][]string{
		"csctoken-*.x86_64.rpm": {"postinstall scriptlet", "preuninstall scriptlet", "csctoken register", "--mozilla-policy /etc/firefox/policies/policies.json", "/usr/lib64/pkcs11/libcsctoken.so"},
		"rssp-*.x86_64.rpm":     {"preinstall scriptlet", "useradd --system", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet"},
	}
	root := t.TempDir()
	must(t, "rpm", "--root", root, "--initdb")
	for pattern, files := range want {
		pkg := dist(t, pattern)
		list := must(t, "rpm", "-qpl", pkg)
		for _, f := range files {
			if !strings.Contains("\n"+list+"\n", "\n"+f+"\n") {
				t.Errorf("rpm -qpl %s: no %s in\n%s", filepath.Base(pkg), f, list)
			}
		}
		if strings.Contains(list, "/usr/lib/x86_64-linux-gnu") {
			t.Errorf("rpm -qpl %s: a Debian path in\n%s", filepath.Base(pkg), list)
		}
		s := must(t, "rpm", "-qp", "--scripts", pkg)
		for _, w := range scripts[pattern] {
			if !strings.Contains(s, w) {
				t.Errorf("rpm -qp --scripts %s: no %q in\n%s", filepath.Base(pkg), w, s)
			}
		}
		// Each scriptlet is valid sh.
		for _, tag := range []string{"PREIN", "POSTIN", "PREUN", "POSTUN"} {
			body := must(t, "rpm", "-qp", "--qf", "%{"+tag+"}", pkg)
			if body == "(none)" {
				continue
			}
			if r := run(t, time.Minute, nil, body, "sh", "-n"); r.Err != nil {
				t.Errorf("%s %s: sh -n: %v", filepath.Base(pkg), tag, r)
			}
		}
		must(t, "rpm", "--root", root, "--nodeps", "--noscripts", "-i", pkg)
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(root, f)); err != nil {
				t.Errorf("rpm --root: %v", err)
			}
		}
		if conf := must(t, "rpm", "--root", root, "-qc", strings.SplitN(filepath.Base(pkg), "-", 2)[0]); !strings.Contains(conf, "/etc/") {
			t.Errorf("rpm -qc: no config file: %q", conf)
		}
	}
	stripped(t, filepath.Join(root, "usr/lib64/pkcs11/libcsctoken.so"))
	must(t, "rpm", "--root", root, "--nodeps", "--noscripts", "-e", "csctoken", "rssp")
	for _, files := range want {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(root, f)); err == nil {
				t.Errorf("rpm -e left %s", f)
			}
		}
	}
}
