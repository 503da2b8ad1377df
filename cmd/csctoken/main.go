// Command csctoken is the user's side of the csctoken PKCS#11 module: it
// reads the module's config (the same lookup as libcsctoken.so:
// $CSCTOKEN_CONFIG, ~/.config/csctoken/csctoken.toml,
// /etc/csctoken/csctoken.toml; or --config), logs in to the CSC services,
// shows what the module sees and signs through the module's own code, in
// process (never by loading libcsctoken.so, see DESIGN.md).
//
//	csctoken login  [--service NAME] [--password-stdin]   (auth = "oauth2": in the browser)
//	csctoken logout [--service NAME]
//	csctoken status [--service NAME]
//	csctoken list   [--service NAME] [--pem]
//	csctoken sign   --service NAME [--credential ID | --label L] --mechanism rsa-pkcs|rsa-pss|ecdsa
//	                [--hash sha256|sha384|sha512] --in FILE --out SIG [--pin-stdin] [--raw]
//	csctoken doctor
//	csctoken version
//
// Every command takes --config FILE and --verbose (the module and client
// log on stderr).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
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

const usage = `usage: csctoken COMMAND [flags]

commands:
  login  [--service NAME] [--password-stdin]   log in to the service(s) and keep the token
                                               (auth = "oauth2": in the browser)
  logout [--service NAME]                      revoke and forget the service token(s)
  status [--service NAME]                      services, logins, tokens, credentials
  list   [--service NAME] [--pem]              credentials and certificates
  sign   --service NAME [--credential ID | --label L] --mechanism rsa-pkcs|rsa-pss|ecdsa
         [--hash sha256|sha384|sha512] --in FILE --out SIG [--pin-stdin] [--raw]
                                               sign a file through the PKCS#11 module code
  doctor                                       what the module sees, and what is wrong
  register [--nss DIR]... [--firefox] [--thunderbird] [--p11-kit] [--java FILE] [--remove] [--library PATH] [--name NAME]
                                               register the module with NSS databases (modutil; --firefox, --thunderbird: every
                                               profile of the user, XDG, dot directory, Snap, Flatpak), p11-kit (a .module file) or Java (a SunPKCS11 config FILE); idempotent
                                               and p11-kit (as root: /etc/pkcs11/modules); idempotent
  version

flags of every command:
  --config FILE   the module config (default: $CSCTOKEN_CONFIG, then
                  ~/.config/csctoken/csctoken.toml, then /etc/csctoken/csctoken.toml)
  --verbose       log the module's and the client's work on stderr
`

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		var ue usageError
		var se silentError
		switch {
		case errors.As(err, &se):
		case errors.As(err, &ue):
			fmt.Fprintln(os.Stderr, "csctoken:", err)
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		default:
			fmt.Fprintln(os.Stderr, "csctoken:", err)
		}
		os.Exit(1)
	}
}

// usageError is a mistake on the command line (exit 2, with the usage).
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
	c := &cli{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, input: newLineReader(stdin)}
	// Global flags may come before the command.
	gfs := flag.NewFlagSet("csctoken", flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	c.commonFlags(gfs)
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return nil
		}
		return usageError{err.Error()}
	}
	args = gfs.Args()
	if len(args) == 0 {
		return usageError{"missing command"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "login":
		return c.cmdLogin(rest)
	case "logout":
		return c.cmdLogout(rest)
	case "status":
		return c.cmdStatus(rest)
	case "list":
		return c.cmdList(rest)
	case "sign":
		return c.cmdSign(rest)
	case "doctor":
		return c.cmdDoctor(rest)
	case "register":
		return c.cmdRegister(rest)
	case "version", "--version":
		fmt.Fprintf(stdout, "csctoken %s (PKCS#11 library %d.%d, Cryptoki %d.%d, %s %s/%s)\n", version,
			module.LibraryVersion.Major, module.LibraryVersion.Minor,
			module.CryptokiVersion.Major, module.CryptokiVersion.Minor,
			runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{"unknown command " + cmd}
}

// commonFlags are accepted before the command and by every command.
func (c *cli) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.configPath, "config", c.configPath, "module config file")
	fs.BoolVar(&c.verbose, "verbose", c.verbose, "log on stderr")
}

// parseFlags parses a command's flags (anywhere among its arguments) and
// refuses positional arguments.
func (c *cli) parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	c.commonFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	c.log = slog.New(slog.DiscardHandler)
	if c.verbose {
		c.log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

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
