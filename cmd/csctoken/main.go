// Command csctoken is the user's side of the csctoken PKCS#11 module: it
// reads the module's config (the same lookup as libcsctoken.so:
// $CSCTOKEN_CONFIG, ~/.config/csctoken/csctoken.toml,
// /etc/csctoken/csctoken.toml; or --config), logs in to the CSC services,
// shows what the module sees, signs through the module's own code, in
// process (never by loading libcsctoken.so, see docs/architecture.md), and registers
// the module with programs. `csctoken --help` and `csctoken COMMAND --help`
// describe each command and flag; commands.go holds the command tree.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/csctoken/csctoken/cscclient/oauth"
	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
)

// version is set by the Makefile (-ldflags -X main.version=...).
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		var ue usageError
		var se silentError
		switch {
		case errors.As(err, &se):
		case errors.As(err, &ue):
			fmt.Fprintln(os.Stderr, "csctoken:", err)
			var in inCommand
			if errors.As(err, &in) {
				fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", in.command)
			}
			os.Exit(2)
		default:
			fmt.Fprintln(os.Stderr, "csctoken:", err)
		}
		os.Exit(1)
	}
}

// usageError is a mistake on the command line (exit 2, with a pointer to
// the command's help).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// silentError fails the command after it printed its own report (doctor).
type silentError struct{ msg string }

func (e silentError) Error() string { return e.msg }

// newTokenStore opens the token store that the module uses too; tests
// swap it for a file-only store in a temporary directory.
var newTokenStore = func(log *slog.Logger) (*tokenstore.Store, error) {
	return tokenstore.New(tokenstore.Options{Logger: log})
}

// browserOpener opens the authorization URLs of OAuth2 flows; nil: the
// system browser (xdg-open, which honours $BROWSER). Tests swap it.
var browserOpener oauth.Opener

// cli is one run of the command.
type cli struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	configPath string
	verbose    bool
	log        *slog.Logger

	store *tokenstore.Store
	input *lineReader // stdin, read line by line (passwords, PINs)
}

// run is the whole command, testable in process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, input: newLineReader(stdin),
		log: slog.New(slog.DiscardHandler)}
	root := c.newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if errors.As(err, new(usageError)) {
		return inCommand{err, cmd.CommandPath()}
	}
	return err
}

// inCommand is an error of a command line, with the command whose help
// explains it.
type inCommand struct {
	error
	command string
}

func (e inCommand) Unwrap() error { return e.error }

// errNoConfig says where a config was looked for.
var errNoConfig = fmt.Errorf("no config file: write one at ~/.config/csctoken/csctoken.toml (or set $%s, or pass --config); see `csctoken doctor`", config.EnvConfig)

// findConfig returns the config file to use, "" when there is none.
func (c *cli) findConfig() (string, error) {
	if c.configPath != "" {
		if _, err := os.Stat(c.configPath); err != nil {
			return "", fmt.Errorf("--config: %w", err)
		}
		return c.configPath, nil
	}
	return config.Find()
}

// loadConfig loads the config; problems are reported on stderr and the
// valid services are used, as the module does.
func (c *cli) loadConfig() (*config.Config, error) {
	path, err := c.findConfig()
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errNoConfig
	}
	cfg, err := config.Load(path)
	var probs config.Errors
	switch {
	case errors.As(err, &probs):
		for _, p := range probs {
			fmt.Fprintf(c.stderr, "csctoken: config problem: %s\n", p)
		}
		fmt.Fprintln(c.stderr, "csctoken: services with problems are left out; `csctoken doctor` explains")
	case err != nil:
		return nil, err
	}
	if len(cfg.Services) == 0 {
		return cfg, fmt.Errorf("%s: no usable [[service]]", path)
	}
	return cfg, nil
}

// pick returns the named service, or all of them when name is "".
func pick(cfg *config.Config, name string) ([]config.Service, error) {
	if name == "" {
		return cfg.Services, nil
	}
	var names []string
	for _, s := range cfg.Services {
		if s.Name == name {
			return []config.Service{s}, nil
		}
		names = append(names, fmt.Sprintf("%q", s.Name))
	}
	return nil, fmt.Errorf("no service %q in %s (services: %s)", name, cfg.Path, strings.Join(names, ", "))
}

// pickOne returns the named service, or the only one.
func pickOne(cfg *config.Config, name string) (config.Service, error) {
	if name == "" && len(cfg.Services) > 1 {
		var names []string
		for _, s := range cfg.Services {
			names = append(names, fmt.Sprintf("%q", s.Name))
		}
		return config.Service{}, usageError{"several services; choose one with --service (" + strings.Join(names, ", ") + ")"}
	}
	svcs, err := pick(cfg, name)
	if err != nil {
		return config.Service{}, err
	}
	return svcs[0], nil
}

// tokenStore opens the token store once.
func (c *cli) tokenStore() (*tokenstore.Store, error) {
	if c.store != nil {
		return c.store, nil
	}
	s, err := newTokenStore(c.log)
	if err != nil {
		return nil, err
	}
	c.store = s
	return s, nil
}

// service opens the adapter of one service with the shared token store.
func (c *cli) service(sc config.Service) (*cscservice.Service, error) {
	store, err := c.tokenStore()
	if err != nil {
		return nil, err
	}
	return cscservice.Open(sc, c.log.With("service", sc.Name), c.serviceOptions(store)...)
}

// serviceOptions are the adapter's options in the CLI: the shared token
// store, and browser flows that also print their URL on stderr.
func (c *cli) serviceOptions(store *tokenstore.Store) []cscservice.Option {
	opts := []cscservice.Option{cscservice.WithSecretStore(store), cscservice.WithURLWriter(c.stderr)}
	if browserOpener != nil {
		opts = append(opts, cscservice.WithOpener(browserOpener))
	}
	return opts
}

// factory is the module's NewService, with the shared token store.
func (c *cli) factory() (func(config.Service, *slog.Logger) (module.Service, error), error) {
	store, err := c.tokenStore()
	if err != nil {
		return nil, err
	}
	return cscservice.Factory(c.serviceOptions(store)...), nil
}

// loginHint is the command that logs in to a service.
func loginHint(name string) string {
	if strings.ContainsAny(name, " '\"$\\`") {
		return fmt.Sprintf("csctoken login --service '%s'", strings.ReplaceAll(name, "'", `'\''`))
	}
	return "csctoken login --service " + name
}
