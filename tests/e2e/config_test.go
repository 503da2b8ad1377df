package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
)

// tokenLabels parses the token labels of pkcs11-tool --list-slots.
func tokenLabels(out string) []string {
	var labels []string
	for _, m := range regexp.MustCompile(`(?m)^\s+token label\s+: (.*)$`).FindAllStringSubmatch(out, -1) {
		labels = append(labels, m[1])
	}
	return labels
}

// listSlots runs pkcs11-tool --list-slots and returns the token labels.
// pkcs11-tool exits 1 when there is no slot ("No slots."); that is its
// way, not a failure of the module.
func listSlots(t *testing.T, e *env) []string {
	t.Helper()
	r := e.tool(t, "--list-slots")
	labels := tokenLabels(r.Stdout)
	if r.Err != nil && (len(labels) != 0 || !strings.Contains(r.Stderr, "No slots.") || r.Took > time.Minute/2) {
		t.Fatalf("pkcs11-tool --list-slots: %v", r)
	}
	return labels
}

const goodService = `
[[service]]
name = "Good"
url = "https://127.0.0.1:1/csc/v2"
auth = "basic"
username = "alice"
`

// TestBrokenConfig: a broken or missing config never stops the host
// program; the valid services keep their slots, and the module log says
// what is wrong.
func TestBrokenConfig(t *testing.T) {
	need(t, "pkcs11-tool")
	for _, tc := range []struct {
		name   string
		config string // "" for none; CSCTOKEN_CONFIG is then set to path
		path   string // CSCTOKEN_CONFIG when config is ""
		slots  []string
		log    []string
	}{
		{name: "unknown service key",
			config: `
[[service]]
name = "Bad"
url = "https://127.0.0.1:1/csc/v2"
auth = "basic"
username = "alice"
colour = "blue"
` + goodService,
			slots: []string{"Good"}, log: []string{"service[0].colour: unknown key"}},
		{name: "unknown top-level key", config: "verbose = true\n" + goodService,
			slots: []string{"Good"}, log: []string{"verbose: unknown key"}},
		{name: "http URL", config: strings.Replace(goodService, "https://127.0.0.1:1", "http://rssp.example", 1),
			log: []string{"service[0].url:", "http is allowed only for localhost"}},
		{name: "URL without the CSC path", config: strings.Replace(goodService, "/csc/v2", "/api", 1) + strings.Replace(goodService, "Good", "Second", 1),
			slots: []string{"Second"}, log: []string{"service[0].url:", "path must end in /csc/v2 or /csc/v1"}},
		{name: "missing ca_file", config: goodService + "ca_file = \"/nonexistent/ca.pem\"\n",
			log: []string{"service[0].ca_file:", "no such file"}},
		{name: "endless ca_file", config: goodService + "ca_file = \"/dev/urandom\"\n",
			log: []string{"service[0].ca_file:", "not a regular file"}},
		{name: "port out of range", config: strings.Replace(goodService, ":1/", ":70000/", 1),
			log: []string{"service[0].url:", "port 70000 is outside 1-65535"}},
		{name: "endless config file", path: "/dev/zero",
			log: []string{"not a regular file"}},
		{name: "bad timeout", config: goodService + "timeout = \"soon\"\n",
			log: []string{"service[0].timeout:", "is not a duration"}},
		{name: "bad auth", config: strings.Replace(goodService, `"basic"`, `"kerberos"`, 1),
			log: []string{"service[0].auth:", "must be"}},
		{name: "TOML syntax error", config: "[[service]\nname = \"x\"\n",
			log: []string{"csctoken.toml: line "}},
		{name: "missing file", path: "/nonexistent/csctoken.toml",
			log: []string{"CSCTOKEN_CONFIG", "no such file"}},
		{name: "directory", path: "/",
			log: []string{"not a regular file (a directory)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.config != "" {
				e.useConfig(t, tc.config)
			} else {
				e.setenv("CSCTOKEN_CONFIG", tc.path)
			}
			if got := listSlots(t, e); !slices.Equal(got, tc.slots) {
				t.Errorf("slots %q, want %q", got, tc.slots)
			}
			log := e.logText(t)
			if !strings.Contains(log, "configuration problems") {
				t.Errorf("the module log does not report configuration problems:\n%s", log)
			}
			for _, want := range tc.log {
				if !strings.Contains(log, want) {
					t.Errorf("the module log does not say %q:\n%s", want, log)
				}
			}
			// A C host initializes, sees the slots left and finalizes.
			s := e.session(t)
			s.want("init", "CKR_OK")
			if f := s.want("slots", "CKR_OK"); f[1] != strconv.Itoa(len(tc.slots)) {
				t.Errorf("C_GetSlotList: %s slots, want %d", f[1], len(tc.slots))
			}
			s.want("finalize", "CKR_OK")
		})
	}
	t.Run("no config at all", func(t *testing.T) {
		if _, err := os.Stat("/etc/csctoken/csctoken.toml"); err == nil {
			t.Skip("/etc/csctoken/csctoken.toml exists on this machine")
		}
		e := newEnv(t)
		if got := listSlots(t, e); len(got) != 0 {
			t.Errorf("slots %q without a config", got)
		}
		if log := e.logText(t); !strings.Contains(log, "slots=0") || strings.Contains(log, "level=ERROR") {
			t.Errorf("no config is no slot and no error:\n%s", log)
		}
	})
}

// files lists the files under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConfigLogCache checks the contracts of the README on the module's
// files: the config lookup ($CSCTOKEN_CONFIG, then
// $XDG_CONFIG_HOME/csctoken/csctoken.toml), the log (off by default;
// $CSCTOKEN_LOG or the config's `log` turn it on, mode 0600) and the cache
// of public objects ($XDG_CACHE_HOME/csctoken, or `cache_dir`; 0600).
func TestConfigLogCache(t *testing.T) {
	need(t, "pkcs11-tool")
	srv := startRSSPTest(t, rssptest.Options{Backend: rssptest.Soft})
	enrol(t, srv, user, password)
	e := newEnv(t)
	e.setenv("CSCTOKEN_LOG", "")
	xdgConfig := e.write(t, "config/csctoken/csctoken.toml", []byte(serviceTOML(tokenLabel, srv, user)))
	e.login(t, password) // the CLI finds the config there too
	data := e.write(t, "data", document)

	t.Run("XDG config, no log", func(t *testing.T) {
		before := files(t, e.dir)
		out := e.mustTool(t, "--list-slots")
		if got := tokenLabels(out); !slices.Equal(got, []string{tokenLabel}) {
			t.Fatalf("slots %q from $XDG_CONFIG_HOME/csctoken/csctoken.toml", got)
		}
		sig := e.path("sig")
		e.mustTool(t, "--login", "--pin", pin, "--sign", "--mechanism", "ECDSA-SHA256", "--id", e.keyIDs(t)[labelEC],
			"--input-file", data, "--output-file", sig)
		// The only new files are the signature and the cache.
		var added []string
		for _, f := range files(t, e.dir) {
			if !slices.Contains(before, f) {
				added = append(added, f)
			}
		}
		cache := regexp.MustCompile(`^cache/csctoken/[0-9a-f]{16}\.cache$`)
		added = slices.DeleteFunc(added, func(f string) bool { return f == "sig" || cache.MatchString(f) })
		if len(added) != 0 {
			t.Errorf("files written with the log off: %v", added)
		}
		serial := regexp.MustCompile(`serial num\s+: ([0-9a-f]{16})`).FindStringSubmatch(out)
		if serial == nil {
			t.Fatalf("no serial in %s", out)
		}
		st, err := os.Stat(e.path("cache", "csctoken", serial[1]+".cache"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("cache $XDG_CACHE_HOME/csctoken/<serial>.cache: %v %v, want mode 0600", err, st)
		}
	})

	t.Run("CSCTOKEN_CONFIG first", func(t *testing.T) {
		other := strings.Replace(serviceTOML(tokenLabel, srv, user), tokenLabel, "Override", 1)
		e.useConfig(t, other)
		defer e.setenv("CSCTOKEN_CONFIG", "")
		if got := tokenLabels(e.mustTool(t, "--list-slots")); !slices.Equal(got, []string{"Override"}) {
			t.Errorf("slots %q, want the one of $CSCTOKEN_CONFIG", got)
		}
	})

	t.Run("log and cache_dir from the config", func(t *testing.T) {
		// Relative paths are relative to the config's directory.
		text := "log = \"module-from-config.log\"\ncache_dir = \"cache2\"\n" + serviceTOML(tokenLabel, srv, user)
		if err := os.WriteFile(xdgConfig, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		configLog := filepath.Join(filepath.Dir(xdgConfig), "module-from-config.log")
		e.mustTool(t, "--list-objects", "--login", "--pin", pin)
		st, err := os.Stat(configLog)
		if err != nil || st.Mode().Perm() != 0o600 || st.Size() == 0 {
			t.Fatalf("the config's log: %v %v, want a non-empty file of mode 0600", err, st)
		}
		if caches, _ := filepath.Glob(filepath.Join(filepath.Dir(xdgConfig), "cache2", "*.cache")); len(caches) != 1 {
			t.Errorf("cache_dir: %v, want one cache file", caches)
		}

		// $CSCTOKEN_LOG wins over the config's log.
		e.setenv("CSCTOKEN_LOG", e.log())
		e.mustTool(t, "--list-slots")
		if st2, err := os.Stat(configLog); err != nil || st2.Size() != st.Size() {
			t.Errorf("the config's log was written with $CSCTOKEN_LOG set")
		}
		if st, err := os.Stat(e.log()); err != nil || st.Mode().Perm() != 0o600 || st.Size() == 0 {
			t.Errorf("$CSCTOKEN_LOG: %v %v, want a non-empty file of mode 0600", err, st)
		}
	})
}
