package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetricsAndDrain: the metrics listener is off by default and only on
// loopback unless allow_remote; drain_delay is not negative.
func TestMetricsAndDrain(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		wantErr string
	}{
		{"ok defaults: no metrics listener, no drain delay", "", ""},
		{"ok loopback", "[metrics]\nlisten = \"127.0.0.1:9464\"\n", ""},
		{"ok IPv6 loopback", "[metrics]\nlisten = \"[::1]:9464\"\n", ""},
		{"ok localhost", "[metrics]\nlisten = \"localhost:9464\"\n", ""},
		{"ok remote allowed", "[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n", ""},
		{"ok drain delay", "[server]\ndrain_delay = \"5s\"\n", ""},
		{"fail all addresses", "[metrics]\nlisten = \":9464\"\n", "not a loopback address"},
		{"fail remote", "[metrics]\nlisten = \"192.0.2.1:9464\"\n", "metrics.allow_remote"},
		{"fail no port", "[metrics]\nlisten = \"127.0.0.1\"\n", "metrics.listen"},
		{"fail negative drain delay", "[server]\ndrain_delay = \"-1s\"\n", "drain_delay"},
		{"ok trusted proxies", "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\", \"2001:db8::/32\"]\n", ""},
		{"fail trusted proxy not a prefix", "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "trusted_proxies"},
		{"fail trusted proxy a name", "[server]\ntrusted_proxies = [\"lb.example\"]\n", "trusted_proxies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rssp.toml")
			if err := os.WriteFile(p, []byte(tt.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if tt.toml == "" && (c.Metrics.Listen != "" || c.Server.DrainDelay.Duration != 0) {
					t.Errorf("defaults: metrics.listen %q, drain_delay %v", c.Metrics.Listen, c.Server.DrainDelay)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Load = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestStore: [store] selects SQLite (default) or PostgreSQL; [database] is
// still read as its old name; a DSN with a password is refused, so the
// password stays out of the file.
func TestStore(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		want    Store
		wantErr string
	}{
		{"ok default", "", Store{Driver: "sqlite", Path: "rssp.db", Synchronous: "full"}, ""},
		{"ok sqlite", "[store]\npath = \"state.db\"\n", Store{Driver: "sqlite", Path: "state.db", Synchronous: "full"}, ""},
		{"ok old name", "[database]\ndriver = \"sqlite\"\npath = \"old.db\"\n", Store{Driver: "sqlite", Path: "old.db", Synchronous: "full"}, ""},
		{"ok both alike", "[store]\npath = \"a.db\"\n[database]\npath = \"a.db\"\n", Store{Driver: "sqlite", Path: "a.db", Synchronous: "full"}, ""},
		{"ok postgres", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://rssp@db/rssp\"\npassword_file = \"pgpass\"\nmax_conns = 8\n",
			Store{Driver: "postgres", DSN: "postgres://rssp@db/rssp", PasswordFile: "pgpass", MaxConns: 8}, ""},
		{"ok postgres key value", "[store]\ndriver = \"postgres\"\ndsn = \"host=db user=rssp dbname=rssp\"\n",
			Store{Driver: "postgres", DSN: "host=db user=rssp dbname=rssp"}, ""},
		{"ok synchronous full", "[store]\nsynchronous = \"full\"\n", Store{Driver: "sqlite", Path: "rssp.db", Synchronous: "full"}, ""},
		{"ok synchronous normal", "[store]\nsynchronous = \"normal\"\n", Store{Driver: "sqlite", Path: "rssp.db", Synchronous: "normal"}, ""},
		{"ok synchronous old name", "[database]\nsynchronous = \"normal\"\n", Store{Driver: "sqlite", Path: "rssp.db", Synchronous: "normal"}, ""},
		{"fail synchronous off", "[store]\nsynchronous = \"off\"\n", Store{}, `store.synchronous "off": want "full"`},
		{"fail synchronous upper case", "[store]\nsynchronous = \"NORMAL\"\n", Store{}, `store.synchronous "NORMAL"`},
		{"fail synchronous for postgres", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://db/rssp\"\nsynchronous = \"normal\"\n", Store{}, "synchronous_commit"},
		{"fail both differ", "[store]\npath = \"a.db\"\n[database]\npath = \"b.db\"\n", Store{}, "keep [store] only"},
		{"fail postgres without dsn", "[store]\ndriver = \"postgres\"\n", Store{}, "needs store.dsn"},
		{"fail password in URL", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://rssp:pw@db/rssp\"\n", Store{}, "holds a password"},
		{"fail password in query", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://rssp@db/rssp?password=pw\"\n", Store{}, "holds a password"},
		{"fail password key value", "[store]\ndriver = \"postgres\"\ndsn = \"host=db password=pw\"\n", Store{}, "holds a password"},
		{"fail password key value spaced", "[store]\ndriver = \"postgres\"\ndsn = \"host=db password = pw\"\n", Store{}, "holds a password"},
		{"fail dsn for sqlite", "[store]\ndsn = \"postgres://db/rssp\"\n", Store{}, "for driver \"postgres\""},
		{"fail path for postgres", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://db/rssp\"\npath = \"x.db\"\n", Store{}, "store.path"},
		{"fail driver", "[store]\ndriver = \"mysql\"\n", Store{}, "store.driver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rssp.toml")
			if err := os.WriteFile(p, []byte(tt.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Load = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Store != tt.want || c.Database != tt.want {
				t.Errorf("store = %+v, database = %+v; want %+v", c.Store, c.Database, tt.want)
			}
		})
	}
}
