package config

import (
	"os"
	"path/filepath"
)

// Candidates returns the config files Find looks at after
// $CSCTOKEN_CONFIG, in order: the user's, %APPDATA%\csctoken\csctoken.toml
// (os.UserConfigDir), then the machine's,
// %ProgramData%\csctoken\csctoken.toml (C:\ProgramData when the variable
// is unset), which an installer or a GPO deploys.
func Candidates() []string {
	var c []string
	if dir, err := os.UserConfigDir(); err == nil {
		c = append(c, filepath.Join(dir, "csctoken", "csctoken.toml"))
	}
	pd := os.Getenv("ProgramData")
	if pd == "" || !filepath.IsAbs(pd) {
		pd = `C:\ProgramData`
	}
	return append(c, filepath.Join(pd, "csctoken", "csctoken.toml"))
}
