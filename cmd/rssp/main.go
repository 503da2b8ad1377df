// Command rssp is csctoken's remote signing server: a CSC API v2 service
// with its own keys (software keystore or PKCS#11 HSM), CA and TSA.
// `rssp --help` and `rssp COMMAND --help` describe each command and flag:
// init (a working setup in a directory), serve, admin (users, credentials,
// OAuth2 clients, the audit chain) and version. admin.go holds the admin
// commands.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/csctoken/csctoken/internal/clidoc"
	"github.com/csctoken/csctoken/internal/sdnotify"
	"github.com/csctoken/csctoken/rssp/app"
	"github.com/csctoken/csctoken/rssp/config"
)

// version is set by the Makefile (-ldflags -X main.version=...).
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rssp:", err)
		var ue usageError
		if errors.As(err, &ue) {
			var in inCommand
			if errors.As(err, &in) {
				fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", in.command)
			}
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake on the command line (exit 2, with a pointer to
// the command's help).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// inCommand is an error of a command line, with the command whose help
// explains it.
type inCommand struct {
	error
	command string
}

func (e inCommand) Unwrap() error { return e.error }

// cli is one run of the command.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	configPath     string // admin and serve: --config
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := c.newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if errors.As(err, new(usageError)) {
		return inCommand{err, cmd.CommandPath()}
	}
	return err
}

func (c *cli) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "rssp COMMAND",
		Short: "Remote signing server (CSC API v2 and v1) with its own keys, CA and TSA",
		Long: `rssp is csctoken's remote signing server: a Cloud Signature Consortium API v2
(and v1) service with its own OAuth2 authorization server, keys in a software
keystore or a PKCS#11 HSM, a built-in CA and time-stamping authority, and an
audit chain of every authorization and signature.

Start with "rssp init --dir DIR", then "rssp serve --config DIR/rssp.toml",
and enrol users and their credentials with "rssp admin".`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRun,
	}
	root.SetVersionTemplate("rssp {{.Version}}\n")
	root.AddCommand(c.initCmd(), c.serveCmd(), c.adminCmd(), c.versionCmd(), clidoc.ManCmd(root, "8"))
	clidoc.Setup(root, func(err error) error { return usageError{err.Error()} })
	return root
}

// groupRun answers a command that only groups others when it is called
// without one of them, or with an unknown one.
func groupRun(cmd *cobra.Command, args []string) error {
	var names []string
	for _, k := range cmd.Commands() {
		if k.IsAvailableCommand() && k.Name() != "help" && k.Name() != "completion" {
			names = append(names, k.Name())
		}
	}
	if len(args) == 0 {
		return usageError{fmt.Sprintf("%s needs a command: %s", cmd.CommandPath(), strings.Join(names, ", "))}
	}
	return usageError{fmt.Sprintf("unknown command %q for %s (commands: %s)", args[0], cmd.CommandPath(), strings.Join(names, ", "))}
}

// noArgs refuses positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", cmd.CommandPath(), args[0])}
	}
	return nil
}

// exactArgs wants n positional arguments, named in what.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Sprintf("%s needs %s", cmd.CommandPath(), what)}
		}
		return nil
	}
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(c.stdout, "rssp", version)
			return nil
		},
	}
}

// initOptions are the flags of rssp init.
type initOptions struct {
	dir, backend string
	app.InitOptions
}

func (c *cli) initCmd() *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Write a working setup (config, keys, CA, TLS certificate, database) into a directory",
		Long: `Write a complete setup into DIR: rssp.toml, the embedded database (rssp.db),
the key-encryption key (kek), the credential CA, the time-stamping authority,
and a TLS certificate whose trust root, DIR/tls-ca.pem, clients trust. It
refuses a directory that already holds an rssp.toml.

The TLS certificate names the hosts given by --hostname (and the listen
address when it is a specific one); without --hostname: localhost, 127.0.0.1,
::1, the listen address and the machine's host name. With --tls-cert and
--tls-key, rssp.toml uses the operator's own certificate instead (reloaded on
SIGHUP, as the generated one).

Keys of credentials go into the software keystore (sealed with the
key-encryption key), or with --backend pkcs11 into a PKCS#11 token.`,
		Example: `  rssp init --dir /srv/rssp
  rssp init --dir /srv/rssp --listen 0.0.0.0:8443 --hostname sign.example.org --organization "Example Ltd"
  rssp init --dir /srv/rssp --listen 0.0.0.0:443 --tls-cert /etc/ssl/sign.pem --tls-key /etc/ssl/private/sign.key
  rssp init --dir /srv/rssp-hsm --backend pkcs11 --pkcs11-module /usr/lib/softhsm/libsofthsm2.so \
      --pkcs11-token rssp --pkcs11-pin-file /srv/hsm-pin`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cmdInit(o) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dir, "dir", "", "the directory `DIR` to create the setup in (required)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8443", "the address `ADDR` (host:port) to listen on")
	fs.StringVar(&o.Name, "name", "csctoken RSSP", "the service's `NAME` (CSC info, consent pages, CA names)")
	fs.StringVar(&o.Organization, "organization", "", "the organization `ORG` (O) in the CA, TSA, TLS and credential certificates (default: --name)")
	fs.StringArrayVar(&o.Hostnames, "hostname", nil, "a DNS name or IP address (`HOST`) clients reach the service by, for the TLS certificate; repeatable; the first is the public URL's host (default: localhost, 127.0.0.1, ::1, the listen address, the machine's host name)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "the operator's own TLS certificate `FILE` (PEM, chain after it) instead of a generated one; with --tls-key")
	fs.StringVar(&o.TLSKey, "tls-key", "", "the private key `FILE` (PEM) of --tls-cert")
	fs.StringVar(&o.backend, "backend", "soft", "where credentials' keys live (`BACKEND`): soft (software keystore) or pkcs11")
	fs.StringVar(&o.PKCS11Module, "pkcs11-module", "", "--backend pkcs11: the PKCS#11 module's `PATH`")
	fs.StringVar(&o.PKCS11Token, "pkcs11-token", "", "--backend pkcs11: the token's `LABEL`")
	fs.StringVar(&o.PKCS11PINFile, "pkcs11-pin-file", "", "--backend pkcs11: a `FILE` holding the token's user PIN")
	_ = cmd.MarkFlagDirname("dir")
	_ = cmd.MarkFlagFilename("pkcs11-module", "so")
	_ = cmd.RegisterFlagCompletionFunc("backend", cobra.FixedCompletions([]string{"soft", "pkcs11"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (c *cli) cmdInit(o initOptions) error {
	if o.dir == "" {
		return usageError{"init needs --dir DIR"}
	}
	switch o.backend {
	case "soft":
		if o.PKCS11Module != "" || o.PKCS11Token != "" || o.PKCS11PINFile != "" {
			return usageError{"--pkcs11-* flags need --backend pkcs11"}
		}
	case "pkcs11":
		if o.PKCS11Module == "" || o.PKCS11Token == "" || o.PKCS11PINFile == "" {
			return usageError{"--backend pkcs11 needs --pkcs11-module, --pkcs11-token and --pkcs11-pin-file"}
		}
	default:
		return usageError{"--backend must be soft or pkcs11"}
	}
	r, err := app.Init(context.Background(), o.dir, o.InitOptions)
	if err != nil {
		return err
	}
	tlsRoot := r.TLSCA + " (clients trust this: ca_file in csctoken.toml)"
	if r.TLSCA == "" {
		tlsRoot = "your own certificate's CA (" + o.TLSCert + ")"
	}
	fmt.Fprintf(c.stdout, "rssp set up in %s\n  config:      %s\n  database:    %s\n  KEK:         %s (keep it secret; back it up)\n  TLS root:    %s\n  TLS names:   %s\n  CA root:     %s\n  service URL: %s/csc/v2\nstart it with: %s serve --config %s\n",
		o.dir, r.Config, r.Database, r.KEK, tlsRoot, strings.Join(r.TLSNames, ", "), r.CARoot, r.PublicURL, self(), r.Config)
	for _, w := range r.Warnings {
		fmt.Fprintln(c.stderr, "rssp: warning:", w)
	}
	return nil
}

// self is how to run this program again: its path when it was started by
// a path (build/rssp), else its name.
func self() string {
	if len(os.Args) > 0 && strings.Contains(os.Args[0], "/") && !strings.HasSuffix(os.Args[0], ".test") {
		return os.Args[0]
	}
	return "rssp"
}

// configFlag adds --config to a command that reads rssp.toml.
func (c *cli) configFlag(cmd *cobra.Command, persistent bool) {
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.StringVar(&c.configPath, "config", "", "the server's rssp.toml `FILE` (required; rssp init writes DIR/rssp.toml)")
	_ = cmd.MarkPersistentFlagFilename("config", "toml")
}

// loadConfig loads --config.
func (c *cli) loadConfig() (config.Config, error) {
	if c.configPath == "" {
		return config.Config{}, usageError{"--config F is required (the rssp.toml that rssp init wrote)"}
	}
	return config.Load(c.configPath)
}

func (c *cli) serveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve --config DIR/rssp.toml",
		Short: "Run the server",
		Long: `Run the server of rssp.toml until SIGINT or SIGTERM; it logs on stderr (the
log section of rssp.toml), one line per request and never a secret.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cmdServe() },
	}
	c.configFlag(cmd, false)
	return cmd
}

func (c *cli) cmdServe() error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	log := app.NewLogger(cfg, c.stderr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	a, err := app.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := a.Listen()
	if err != nil {
		return err
	}
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGHUP {
				if cfg.TLS.Disable {
					log.Info("SIGHUP: nothing to reload (TLS disabled)")
					continue
				}
				if until, err := a.ReloadTLS(); err != nil {
					log.Error("SIGHUP: TLS certificate not reloaded; the previous one stays", "err", err)
				} else {
					log.Info("SIGHUP: TLS certificate reloaded", "cert", cfg.Path(cfg.TLS.Cert), "not_after", until)
				}
				continue
			}
			log.Info("rssp stopping", "signal", sig.String())
			cancel()
			return
		}
	}()
	store := app.StoreName(cfg)
	attrs := []any{"version", version, "listen", ln.Addr().String(), "url", a.Config.PublicURL + "/csc/v2",
		"backend", cfg.Keystore.Backend, "store", store, "tls", !cfg.TLS.Disable}
	if m := a.MetricsAddr(); m != "" {
		attrs = append(attrs, "metrics", "http://"+m+"/metrics")
	}
	log.Info("rssp serving", attrs...)
	// Under systemd (rssp.service, Type=notify): ready once it listens.
	if err := sdnotify.Notify(sdnotify.Ready); err != nil {
		log.Warn("telling systemd the service is ready", "err", err)
	}
	go func() {
		<-ctx.Done()
		sdnotify.Notify(sdnotify.Stopping)
	}()
	return a.Serve(ctx, ln)
}

func readSecret(stdin io.Reader, what string) (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the %s from standard input: %w", what, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
