package programs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRegister registers the module with `csctoken register`: in a fresh
// NSS database, where certutil then lists the token's certificates, and
// with p11-kit, where list-modules shows the token; twice (idempotent),
// then --remove (twice).
func TestRegister(t *testing.T) {
	need(t, "modutil", "certutil")
	f := newFixture(t)
	csctoken := cli(t)
	dir := f.path("nssdb")
	f.write(t, "nssdb/.keep", nil)
	f.mustRun(t, "certutil", "-N", "-d", "sql:"+dir, "--empty-password")
	countModules := func() int {
		data, err := os.ReadFile(filepath.Join(dir, "pkcs11.txt"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(data), "library="+f.lib+"\n")
	}

	t.Run("nss", func(t *testing.T) {
		out := f.mustRun(t, csctoken, "register", "--nss", "sql:"+dir, "--library", f.lib)
		if !strings.Contains(out, "registered "+f.lib+` as "csctoken"`) {
			t.Errorf("register: %q", out)
		}
		out = f.mustRun(t, csctoken, "register", "--nss", dir, "--library", f.lib)
		if !strings.Contains(out, "already registered") || countModules() != 1 {
			t.Errorf("second register: %q, %d modules", out, countModules())
		}
		out = f.mustRun(t, "certutil", "-L", "-d", "sql:"+dir, "-h", "all")
		for _, k := range []*key{f.rsa, f.ec} {
			if !strings.Contains(out, tokenLabel+":"+k.label) {
				t.Errorf("no %q in certutil -L -h all after register:\n%s", k.label, out)
			}
		}
		out = f.mustRun(t, csctoken, "register", "--nss", dir, "--remove")
		if !strings.Contains(out, `removed "csctoken"`) || countModules() != 0 {
			t.Errorf("register --remove: %q, %d modules", out, countModules())
		}
		out = f.mustRun(t, csctoken, "register", "--nss", dir, "--remove")
		if !strings.Contains(out, "not registered") {
			t.Errorf("second register --remove: %q", out)
		}
		if r := f.run(t, 2*time.Minute, "", csctoken, "register", "--nss", f.path("no-db"), "--library", f.lib); r.Err == nil || !strings.Contains(r.Stderr, "certutil -N") {
			t.Errorf("register into a missing database: %v", r)
		}
	})

	t.Run("p11-kit", func(t *testing.T) {
		need(t, "p11-kit")
		if os.Geteuid() != 0 {
			t.Skip("as root only: register --p11-kit writes the system registry then (p11-kit ignores ~/.config as root)")
		}
		name := "csctoken-register-test"
		file := filepath.Join(p11kitModules, name+".module")
		systemDir(t, p11kitModules)
		t.Cleanup(func() { os.Remove(file) })
		out := f.mustRun(t, csctoken, "register", "--p11-kit", "--name", name, "--library", f.lib)
		if !strings.Contains(out, file+": registered "+f.lib) {
			t.Errorf("register --p11-kit: %q", out)
		}
		out = f.mustRun(t, csctoken, "register", "--p11-kit", "--name", name, "--library", f.lib)
		if !strings.Contains(out, "already registered") {
			t.Errorf("second register --p11-kit: %q", out)
		}
		out = f.mustRun(t, "p11-kit", "list-modules")
		if i := strings.Index(out, name+": "+f.lib); i < 0 || !strings.Contains(out[i:], "token: "+tokenLabel) {
			t.Errorf("p11-kit list-modules after register:\n%s", out)
		}
		out = f.mustRun(t, csctoken, "register", "--p11-kit", "--name", name, "--remove")
		if _, err := os.Stat(file); err == nil || !strings.Contains(out, "removed") {
			t.Errorf("register --p11-kit --remove: %q, %v", out, err)
		}
	})
}
