//go:build !windows

package config

import (
	"os"
	"path/filepath"
)

// Candidates returns the config files Find looks at after
// $CSCTOKEN_CONFIG, in order: the user's
// ($XDG_CONFIG_HOME/csctoken/csctoken.toml, or ~/.config/... when
// XDG_CONFIG_HOME is unset or relative), then the machine's,
// /etc/csctoken/csctoken.toml.
func Candidates() []string {
	var c []string
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		c = append(c, filepath.Join(x, "csctoken", "csctoken.toml"))
	} else if home, err := os.UserHomeDir(); err == nil {
		c = append(c, filepath.Join(home, ".config", "csctoken", "csctoken.toml"))
	}
	return append(c, "/etc/csctoken/csctoken.toml")
}
