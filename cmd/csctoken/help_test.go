package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/csctoken/csctoken/internal/clidoc"
)

// TestHelp: every command answers --help without error, with a description
// and every flag described; completion and the manual page cover them.
func TestHelp(t *testing.T) {
	useTempStore(t)
	root := (&cli{}).newRootCmd()
	cmds := clidoc.All(root)
	if len(cmds) < 9 {
		t.Fatalf("only %d commands", len(cmds))
	}
	for _, cmd := range cmds {
		path := strings.Fields(cmd.CommandPath())[1:]
		t.Run(strings.Join(append([]string{"csctoken"}, path...), " "), func(t *testing.T) {
			r := runCLI(t, "", append(path, "--help")...).must(t)
			if cmd.Short == "" {
				t.Error("no description")
			}
			desc, _, _ := strings.Cut(cmd.Long, "\n")
			if desc == "" {
				desc = cmd.Short
			}
			r.contains(t, "stdout", desc)
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Usage == "" {
					t.Errorf("--%s has no description", f.Name)
				}
				r.contains(t, "stdout", "--"+f.Name)
			})
		})
	}
	man := string(clidoc.Man(root, "1", time.Time{}))
	for _, want := range []string{"csctoken sign", `\fB--mechanism\fP`, `\fB--pin-stdin\fP`, "csctoken register", "csctoken version"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		runCLI(t, "", "completion", shell, "--help").must(t)
		r := runCLI(t, "", "completion", shell).must(t)
		if !strings.Contains(r.stdout, "csctoken") || len(r.stdout) < 1000 {
			t.Errorf("completion %s: %q", shell, r.stdout)
		}
	}
}
