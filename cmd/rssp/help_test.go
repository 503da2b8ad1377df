package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/csctoken/csctoken/internal/clidoc"
)

// TestHelp: every command answers --help without error (admin commands
// without --config too), with a description and every flag described;
// completion and the manual page cover them.
func TestHelp(t *testing.T) {
	root := (&cli{}).newRootCmd()
	cmds := clidoc.All(root)
	if len(cmds) < 15 {
		t.Fatalf("only %d commands", len(cmds))
	}
	for _, cmd := range cmds {
		path := strings.Fields(cmd.CommandPath())[1:]
		t.Run(cmd.CommandPath(), func(t *testing.T) {
			out, _, err := runCmd(t, "", append(path, "--help")...)
			if err != nil {
				t.Fatal(err)
			}
			desc, _, _ := strings.Cut(cmd.Long, "\n")
			if desc == "" {
				desc = cmd.Short
			}
			if cmd.Short == "" || !strings.Contains(out, desc) {
				t.Errorf("no description:\n%s", out)
			}
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Usage == "" || !strings.Contains(out, "--"+f.Name) {
					t.Errorf("--%s not described:\n%s", f.Name, out)
				}
			})
		})
	}
	man := string(clidoc.Man(root, "8", time.Time{}))
	for _, want := range []string{"rssp admin user add", "rssp admin credential add", `\fB--pin-stdin\fP`, `\fB--config\fP`, "rssp init"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, _, err := runCmd(t, "", "completion", shell)
		if err != nil || !strings.Contains(out, "rssp") || len(out) < 1000 {
			t.Errorf("completion %s: %v %q", shell, err, out)
		}
	}
}
