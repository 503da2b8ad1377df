// Package clidoc holds what the csctoken and rssp command trees (cobra)
// share: flag errors as usage errors, the shell completion command, and one
// manual page per program generated from the commands themselves (every
// command, its description, flags and defaults), so the help, the
// completion and the man page never disagree.
package clidoc

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	md2man "github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ManCommand is the hidden command that prints a program's manual page
// (make man).
const ManCommand = "gen-man"

// Setup finishes a root command: flag errors go through usage (the
// program's usage error, exit 2), and the help command exists before the
// tree is walked. (The completion command is added by Execute, once the
// output is set.)
func Setup(root *cobra.Command, usage func(error) error) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	// A command that groups others shows "CMD [command]", not its own use
	// line as well.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.CompletionOptions.HiddenDefaultCmd = false
	root.InitDefaultHelpCmd()
	root.InitDefaultHelpFlag()
	root.InitDefaultVersionFlag()
}

// ManCmd is the hidden command `PROGRAM gen-man` that writes the program's
// manual page (troff) on stdout.
func ManCmd(root *cobra.Command, section string) *cobra.Command {
	return &cobra.Command{
		Use:    ManCommand,
		Short:  "write the manual page on stdout",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			date := time.Now()
			if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
				}
				date = time.Unix(n, 0).UTC()
			}
			_, err := cmd.OutOrStdout().Write(Man(root, section, date))
			return err
		},
	}
}

// Man renders the manual page of root and all its visible subcommands.
func Man(root *cobra.Command, section string, date time.Time) []byte {
	var b bytes.Buffer
	name := root.Name()
	fmt.Fprintf(&b, "%% %q %q %q %q %q\n", strings.ToUpper(name), section, date.Format("January 2006"), name, "csctoken")
	fmt.Fprintf(&b, "# NAME\n%s \\- %s\n\n", name, root.Short)
	b.WriteString("# SYNOPSIS\n")
	for _, c := range visible(root) {
		fmt.Fprintf(&b, "**%s** %s\n\n", c.CommandPath(), escape(argsOf(c)))
	}
	fmt.Fprintf(&b, "# DESCRIPTION\n%s\n\n", paragraphs(root.Long))
	if fs := root.PersistentFlags(); fs.HasAvailableFlags() {
		b.WriteString("# GLOBAL OPTIONS\nEvery command takes these.\n\n")
		flags(&b, fs)
	}
	b.WriteString("# COMMANDS\n")
	for _, c := range visible(root) {
		fmt.Fprintf(&b, "## %s\n", c.CommandPath())
		desc := c.Long
		if desc == "" {
			desc = c.Short
		}
		fmt.Fprintf(&b, "%s\n\n", paragraphs(desc))
		flags(&b, ownFlags(root, c))
		if c.Example != "" {
			fmt.Fprintf(&b, "Examples:\n\n```\n%s\n```\n\n", strings.Trim(c.Example, "\n"))
		}
	}
	b.WriteString("# SEE ALSO\n")
	if name == "rssp" {
		b.WriteString("**csctoken**(1)\n")
	} else {
		b.WriteString("**rssp**(8), **pkcs11-tool**(1), **p11-kit**(8), **modutil**(1)\n")
	}
	return md2man.Render(b.Bytes())
}

// visible lists the commands below root that do something, depth first,
// in name order (not help, not hidden ones, not groups).
func visible(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, c := range All(root)[1:] {
		if !c.HasAvailableSubCommands() {
			out = append(out, c)
		}
	}
	return out
}

// All lists root and every available command below it, groups included,
// depth first in name order (not help, not hidden ones).
func All(root *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{root}
	kids := append([]*cobra.Command(nil), root.Commands()...)
	sort.Slice(kids, func(i, j int) bool { return kids[i].Name() < kids[j].Name() })
	for _, k := range kids {
		if k.IsAvailableCommand() && k.Name() != "help" {
			out = append(out, All(k)...)
		}
	}
	return out
}

// argsOf is the part of a command's Use after its name, or [flags].
func argsOf(c *cobra.Command) string {
	_, rest, _ := strings.Cut(c.Use, " ")
	if rest == "" && c.HasAvailableLocalFlags() {
		return "[flags]"
	}
	if c.HasAvailableLocalFlags() && !strings.Contains(rest, "flags") {
		rest += " [flags]"
	}
	return rest
}

// flags writes a flag list: the flag, its argument, its description and
// its default.
func flags(b *bytes.Buffer, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		arg, usage := pflag.UnquoteUsage(f)
		fmt.Fprintf(b, "**--%s**", f.Name)
		if arg != "" {
			fmt.Fprintf(b, " *%s*", arg)
		}
		b.WriteString("\n: ")
		b.WriteString(escape(usage))
		if d := defaultOf(f); d != "" {
			fmt.Fprintf(b, " (default: %s)", escape(d))
		}
		b.WriteString("\n\n")
	})
}

// ownFlags are a command's flags less the global ones (those of the
// root), which GLOBAL OPTIONS lists once.
func ownFlags(root, c *cobra.Command) *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	add := func(f *pflag.Flag) {
		if f.Name != "help" && root.PersistentFlags().Lookup(f.Name) == nil && fs.Lookup(f.Name) == nil {
			fs.AddFlag(f)
		}
	}
	c.LocalFlags().VisitAll(add)
	c.InheritedFlags().VisitAll(add)
	return fs
}

// defaultOf is a flag's default worth printing ("" for zero values).
func defaultOf(f *pflag.Flag) string {
	switch f.DefValue {
	case "", "false", "0", "[]":
		return ""
	}
	return f.DefValue
}

// paragraphs keeps a description's paragraphs and line breaks of indented
// lines (examples), escaping markdown.
func paragraphs(s string) string {
	var out []string
	for _, p := range strings.Split(strings.TrimSpace(s), "\n\n") {
		if strings.HasPrefix(p, "  ") {
			out = append(out, "```\n"+p+"\n```")
			continue
		}
		out = append(out, escape(p))
	}
	return strings.Join(out, "\n\n")
}

// escape protects the characters markdown would read as markup.
func escape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `_`, `\_`, "`", "\\`", `<`, `\<`, `[`, `\[`, `]`, `\]`, `#`, `\#`, `|`, `\|`)
	return r.Replace(s)
}
