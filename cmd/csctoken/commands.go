package main

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/csctoken/csctoken/internal/clidoc"
	"github.com/csctoken/csctoken/module"
)

// The command tree. Each command's flags fill an options struct, and its
// RunE calls the function that does the work (cmdLogin, cmdRegister...).

// versionLine is what `csctoken version` and `csctoken --version` print.
func versionLine() string {
	return fmt.Sprintf("csctoken %s (PKCS#11 library %d.%d, Cryptoki %d.%d, %s %s/%s)", version,
		module.LibraryVersion.Major, module.LibraryVersion.Minor,
		module.CryptokiVersion.Major, module.CryptokiVersion.Minor,
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newRootCmd builds the csctoken command with its subcommands.
func (c *cli) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "csctoken COMMAND",
		Short: "Log in to remote signing services and use their keys through the PKCS#11 module",
		Long: `csctoken is the user's side of libcsctoken.so, the PKCS#11 module whose keys a
remote signing service (Cloud Signature Consortium API) keeps. It reads the
module's config, logs in to the services, shows what the module sees, signs
through the module's own code, and registers the module with programs.

The config is looked up as the module does: --config, then $CSCTOKEN_CONFIG,
then $XDG_CONFIG_HOME/csctoken/csctoken.toml (~/.config/csctoken/csctoken.toml),
then /etc/csctoken/csctoken.toml.`,
		Version:       versionLine(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{"missing command"}
			}
			return usageError{"unknown command " + args[0]}
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			c.log = slog.New(slog.DiscardHandler)
			if c.verbose {
				c.log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			return nil
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&c.configPath, "config", "", "the module config `FILE` (default: $CSCTOKEN_CONFIG, then ~/.config/csctoken/csctoken.toml, then /etc/csctoken/csctoken.toml)")
	pf.BoolVar(&c.verbose, "verbose", false, "log the module's and the client's work on stderr")

	root.AddCommand(
		c.loginCmd(), c.logoutCmd(), c.statusCmd(), c.listCmd(), c.signCmd(),
		c.doctorCmd(), c.registerCmd(), c.versionCmd(),
		clidoc.ManCmd(root, "1"),
	)
	clidoc.Setup(root, func(err error) error { return usageError{err.Error()} })
	return root
}

// noArgs refuses positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", cmd.Name(), args[0])}
	}
	return nil
}

// serviceFlag is --service, which most commands take.
func serviceFlag(fs *pflag.FlagSet, name *string, what string) {
	fs.StringVar(name, "service", "", what)
}

func (c *cli) loginCmd() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to the service(s) and keep the token where the module finds it",
		Long: `Log in to each service of the config (or the one named by --service) and keep
the token, refresh token included, in the OS keyring (or a 0600 file when there
is none), where the module finds it.

auth = "basic": the password of the config's username, asked on the terminal
(or one line per service on stdin with --password-stdin).
auth = "oauth2": in the system browser (the service's login and consent
pages); the URL is printed too, for a browser on another machine.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cmdLogin(o) },
	}
	serviceFlag(cmd.Flags(), &o.service, "the service `NAME` to log in to (default: all of the config)")
	cmd.Flags().BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from stdin, one line per service (auth = \"basic\")")
	return cmd
}

func (c *cli) logoutCmd() *cobra.Command {
	var o logoutOptions
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke and forget the service token(s)",
		Long: `Forget the stored token of each service (or the one named by --service) and
ask the service to revoke it. When the service cannot be reached the token is
forgotten all the same, and logout says that the service did not revoke it.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cmdLogout(o) },
	}
	serviceFlag(cmd.Flags(), &o.service, "the service `NAME` to log out of (default: all of the config)")
	return cmd
}

func (c *cli) statusCmd() *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Services, logins, tokens and credentials",
		Long: `Show, per service: whether it is reachable, the login and how long its token
lasts, where the token is kept, and the credentials with their certificates'
validity.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cmdStatus(o) },
	}
	serviceFlag(cmd.Flags(), &o.service, "only the service `NAME` (default: all of the config)")
	return cmd
}

func (c *cli) listCmd() *cobra.Command {
	var o listOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Credentials and certificates",
		Long: `List the credentials of each service: ID, description, key, SCAL, how they are
authorized, the certificate's subject and expiry. With --pem, the certificate
chains in PEM instead.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cmdList(o) },
	}
	serviceFlag(cmd.Flags(), &o.service, "only the service `NAME` (default: all of the config)")
	cmd.Flags().BoolVar(&o.pem, "pem", false, "print the certificate chains in PEM (end-entity certificate first)")
	return cmd
}

func (c *cli) signCmd() *cobra.Command {
	var o signOptions
	cmd := &cobra.Command{
		Use:   "sign --in FILE --out SIG --mechanism rsa-pkcs|rsa-pss|ecdsa",
		Short: "Sign a file through the PKCS#11 module's code",
		Long: `Sign a file as a PKCS#11 program would, through the module's code in this
process: C_Initialize, C_OpenSession, C_Login with the PIN (asked on the
terminal, or the first line of stdin with --pin-stdin), C_FindObjects,
C_SignInit, C_SignUpdate..., C_SignFinal.

The key is chosen by --credential (the credential ID) or --label (its
description); without either, the only key of the service that fits the
mechanism.`,
		Example: `  csctoken sign --mechanism rsa-pkcs --in doc.pdf --out doc.sig
  echo 123456 | csctoken sign --credential ID --mechanism ecdsa --in doc --out doc.sig --pin-stdin`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cmdSign(o) },
	}
	fs := cmd.Flags()
	serviceFlag(fs, &o.service, "the service `NAME` (default: the only one of the config)")
	fs.StringVar(&o.credential, "credential", "", "the credential `ID` of the key to sign with")
	fs.StringVar(&o.label, "label", "", "the key's `LABEL` (the credential's description), instead of --credential")
	fs.StringVar(&o.mechanism, "mechanism", "", "the `MECHANISM`: rsa-pkcs (PKCS#1 v1.5), rsa-pss or ecdsa")
	fs.StringVar(&o.hash, "hash", "sha256", "the `HASH`: sha256, sha384 or sha512")
	fs.StringVar(&o.in, "in", "", "the `FILE` to sign (- for stdin)")
	fs.StringVar(&o.out, "out", "", "the `FILE` to write the signature to (- for stdout)")
	fs.BoolVar(&o.pinStdin, "pin-stdin", false, "read the PIN from the first line of stdin")
	fs.BoolVar(&o.raw, "raw", false, "ECDSA: write r||s (PKCS#11's form) instead of DER")
	_ = cmd.RegisterFlagCompletionFunc("mechanism", cobra.FixedCompletions([]string{"rsa-pkcs", "rsa-pss", "ecdsa"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("hash", cobra.FixedCompletions([]string{"sha256", "sha384", "sha512"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (c *cli) doctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "What the module sees, and what is wrong",
		Long: `Show what the module would see: the config file and its problems, the token
store, and per slot the token, the service's reachability, the login, the
objects and the mechanisms. Exits 1 when it found a problem.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cmdDoctor() },
	}
}

func (c *cli) registerCmd() *cobra.Command {
	var o registerOptions
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register the module with NSS (Firefox, Thunderbird), p11-kit or Java",
		Long: `Register libcsctoken.so with NSS databases (modutil): the ones given with
--nss, and with --firefox and --thunderbird those of every Firefox or
Thunderbird profile of the user (a profile never started gets an empty
database); with p11-kit (a .module file: ~/.config/pkcs11/modules, or
/etc/pkcs11/modules as root); or for Java (a SunPKCS11 configuration file for
keytool and jarsigner -providerArg FILE); or, with --mozilla-policy, in a
Firefox or Thunderbird enterprise policy file (policies.json: our entry is
merged into SecurityDevices, every other policy kept; a file that does not
parse is left alone, with a warning). With --remove, undo it. Every form
is idempotent.`,
		Example: `  csctoken register --firefox
  csctoken register --nss sql:$HOME/.pki/nssdb --p11-kit
  csctoken register --java ~/csctoken-java.cfg
  sudo csctoken register --mozilla-policy /etc/firefox/policies/policies.json`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return c.cmdRegister(o) },
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&o.nss, "nss", nil, "an NSS database directory (sql:`DIR` or DIR); repeatable")
	fs.BoolVar(&o.firefox, "firefox", false, "the NSS databases of every Firefox profile of the user (XDG, dot directory, Snap, Flatpak)")
	fs.BoolVar(&o.thunderbird, "thunderbird", false, "the NSS databases of every Thunderbird profile of the user")
	fs.BoolVar(&o.p11kit, "p11-kit", false, "register with p11-kit (a .module file)")
	fs.StringVar(&o.java, "java", "", "write a SunPKCS11 configuration `FILE` for Java (keytool, jarsigner: -providerArg FILE)")
	fs.StringArrayVar(&o.policies, "mozilla-policy", nil, "add the module to a Firefox or Thunderbird enterprise policies.json (SecurityDevices, for every user of the machine); repeatable")
	fs.BoolVar(&o.remove, "remove", false, "remove the registration instead")
	fs.StringVar(&o.library, "library", "", "the module's `PATH` (default: found next to csctoken or in the system's PKCS#11 directories)")
	fs.StringVar(&o.name, "name", "csctoken", "the module's `NAME` in NSS and p11-kit")
	_ = cmd.MarkFlagDirname("nss")
	_ = cmd.MarkFlagFilename("library", "so")
	_ = cmd.MarkFlagFilename("mozilla-policy", "json")
	return cmd
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of csctoken and of its PKCS#11 library",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(c.stdout, versionLine())
			return nil
		},
	}
}
