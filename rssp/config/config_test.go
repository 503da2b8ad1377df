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
