package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "csctoken.toml")

	tests := []struct {
		name     string
		text     string
		services int
		problems []string // substrings expected among problems, in order
	}{
		{"ok empty", ``, 0, nil},
		{"ok minimal basic", `
[[service]]
name = "Work"
url = "https://rssp.example.com/csc/v2/"
auth = "basic"
username = "alice"
`, 1, nil},
		{"ok full oauth2", `
log = "module.log"
cache_dir = "~/cache"
[[service]]
name = "A"
url = "https://a.example/prefix/csc/v1"
auth = "oauth2"
client_id = "csctoken"
credential_auth = "browser"
ca_file = "ca.pem"
timeout = "10s"
list_timeout = "2s"
always_authenticate = true
verify_every_signature = true
[[service]]
name = "B"
url = "http://127.0.0.1:8443/csc/v2"
auth = "basic"
username = "bob"
`, 2, nil},
		{"ok failover URLs", `
[[service]]
name = "Work"
url = "https://a.example/csc/v2"
failover_urls = ["https://b.example/csc/v2/", "https://c.example:8443/csc/v2"]
auth = "basic"
username = "alice"
`, 1, nil},
		{"fail failover URLs", `
[[service]]
name = "Work"
url = "https://a.example/csc/v2"
failover_urls = ["https://b.example/csc/v1", "http://c.example/csc/v2", "https://a.example/csc/v2/"]
auth = "basic"
username = "alice"
`, 0, []string{"service[0].failover_urls[0]: \"https://b.example/csc/v1\" speaks v1", "failover_urls[1]: \"http://c.example/csc/v2\": http is allowed only", "failover_urls[2]: \"https://a.example/csc/v2/\" is given twice"}},
		{"fail syntax", "[[service]\nname=", 0, []string{"line"}},
		{"fail unknown top", "colour = 1\n", 0, []string{"colour: unknown key"}},
		{"fail unknown in second service", `
[[service]]
name = "A"
url = "https://a/csc/v2"
auth = "basic"
username = "u"
[[service]]
name = "B"
url = "https://b/csc/v2"
auth = "basic"
username = "u"
pin = "1234"
`, 1, []string{"service[1].pin: unknown key"}},
		{"fail duplicate names", `
[[service]]
name = "A"
url = "https://a/csc/v2"
auth = "basic"
username = "u"
[[service]]
name = "A"
url = "https://b/csc/v2"
auth = "basic"
username = "u"
`, 1, []string{"service[1].name: duplicate"}},
		{"fail values", `
[[service]]
url = "ftp://a/csc/v2"
auth = "basic"
[[service]]
name = "this name is far too long for a token label"
url = "https://a/csc/v3"
auth = "oauth2"
credential_auth = "sms"
timeout = "soon"
list_timeout = "-1s"
ca_file = "missing.pem"
[[service]]
name = "B"
url = "http://example.com/csc/v2"
auth = "kerberos"
`, 0, []string{
			"service[0].name: missing",
			"service[0].url", "scheme must be https",
			"service[0].username: missing",
			"service[1].name", "longer than",
			"service[1].url", "/csc/v2 or /csc/v1",
			"service[1].client_id: missing",
			"service[1].credential_auth",
			"service[1].ca_file",
			"service[1].timeout",
			"service[1].list_timeout", "positive",
			"service[2].url", "only for localhost",
			"service[2].auth",
		}},
		{"fail wrong type", "[[service]]\nname = 3\n", 0, []string{"csctoken.toml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.text), path)
			if cfg == nil {
				t.Fatal("nil config")
			}
			if len(cfg.Services) != tt.services {
				t.Errorf("services = %d, want %d (%v)", len(cfg.Services), tt.services, err)
			}
			if len(tt.problems) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			rest := msg
			for _, want := range tt.problems {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("error %q lacks %q (in order)", msg, want)
				}
				rest = rest[i+len(want):]
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte(`
log = "module.log"
[[service]]
name = "A"
url = "https://a.example/csc/v2/"
failover_urls = ["https://b.example/csc/v2/"]
auth = "oauth2"
client_id = "c"
ca_file = "ca.pem"
list_timeout = "2s"
`), filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	if s.URL != "https://a.example/csc/v2" || s.Version() != "v2" {
		t.Errorf("URL = %q version %s", s.URL, s.Version())
	}
	if len(s.FailoverURLs) != 1 || s.FailoverURLs[0] != "https://b.example/csc/v2" {
		t.Errorf("FailoverURLs = %q", s.FailoverURLs)
	}
	if s.CredentialAuth != CredentialAuthPIN || s.Timeout != 30*time.Second || s.ListTimeout != 2*time.Second {
		t.Errorf("defaults: %+v", s)
	}
	if s.CAFile != ca || cfg.Log != filepath.Join(dir, "module.log") {
		t.Errorf("paths: %q %q", s.CAFile, cfg.Log)
	}
	var probs Errors
	_, err = Parse([]byte("x=1"), "f.toml")
	if !errors.As(err, &probs) || len(probs) != 1 || probs[0].Key != "x" || probs[0].File != "f.toml" {
		t.Errorf("problems = %#v", probs)
	}
}

func TestLoadAndFind(t *testing.T) {
	dir := t.TempDir()
	t.Run("ok missing file is no config", func(t *testing.T) {
		cfg, err := Load(filepath.Join(dir, "nope.toml"))
		if err != nil || cfg == nil || len(cfg.Services) != 0 {
			t.Fatalf("Load = %v, %v", cfg, err)
		}
	})
	t.Run("ok env wins", func(t *testing.T) {
		p := filepath.Join(dir, "env.toml")
		if err := os.WriteFile(p, []byte(""), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(EnvConfig, p)
		got, err := Find()
		if err != nil || got != p {
			t.Fatalf("Find = %q, %v", got, err)
		}
	})
	t.Run("fail env missing", func(t *testing.T) {
		t.Setenv(EnvConfig, filepath.Join(dir, "missing.toml"))
		cfg, err := LoadDefault()
		if err == nil || cfg == nil {
			t.Fatalf("LoadDefault = %v, %v", cfg, err)
		}
	})
	t.Run("ok xdg", func(t *testing.T) {
		t.Setenv(EnvConfig, "")
		x := filepath.Join(dir, "xdg")
		p := filepath.Join(x, "csctoken", "csctoken.toml")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("[[service]]\nname=\"A\"\nurl=\"https://a/csc/v2\"\nauth=\"basic\"\nusername=\"u\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("XDG_CONFIG_HOME", x)
		cfg, err := LoadDefault()
		if err != nil || cfg.Path != p || len(cfg.Services) != 1 {
			t.Fatalf("LoadDefault = %+v, %v", cfg, err)
		}
	})
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("[[service]]\nname=\"A\"\nurl=\"https://a/csc/v2\"\nauth=\"basic\"\nusername=\"u\"\ntimeout=\"3s\"\n"))
	f.Add([]byte("log=1\n[[service]]\nfoo.bar=2\n[service.x]\ny=[1,2]\n"))
	f.Add([]byte("[[service]]\nurl=\"http://[::1]:80/csc/v1/\"\nauth=\"oauth2\"\nclient_id=\"\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.toml")
		if cfg == nil {
			t.Fatal("nil config")
		}
		names := map[string]bool{}
		for _, s := range cfg.Services {
			if s.Name == "" || len(s.Name) > 32 || names[s.Name] {
				t.Fatalf("invalid service accepted: %+v", s)
			}
			names[s.Name] = true
			if s.Timeout <= 0 || s.ListTimeout <= 0 {
				t.Fatalf("bad timeouts: %+v", s)
			}
			if _, err := normalizeURL(s.URL); err != nil {
				t.Fatalf("URL %q not stable: %v", s.URL, err)
			}
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error text")
		}
	})
}
