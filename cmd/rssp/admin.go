package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/app"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/postgres"
	"github.com/csctoken/csctoken/rssp/store/sqlite"
)

// The admin commands work on the server's state directly (its database
// and keystore, through rssp.toml); the server may run meanwhile.

func (c *cli) adminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin --config DIR/rssp.toml COMMAND",
		Short: "Manage users, credentials, OAuth2 clients and the audit chain",
		Long: `Manage the server's users, credentials and OAuth2 clients, and check its audit
chain, directly in its database and keystore (the server may run meanwhile).
Secrets (passwords, PINs, client secrets) are read from standard input, never
from flags.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	c.configFlag(cmd, true)
	user := &cobra.Command{Use: "user", Short: "Manage user accounts", Args: cobra.ArbitraryArgs, RunE: groupRun}
	user.AddCommand(c.userAddCmd(), c.userListCmd(),
		c.userStateCmd("disable", "Disable a user: their logins end and they cannot log in until enabled"),
		c.userStateCmd("enable", "Enable a disabled user"),
		c.userPasswordCmd(), c.userExternalSubjectCmd(), c.userDeleteCmd(), c.userRequireFIDOCmd(), c.userKeysCmd())
	cred := &cobra.Command{Use: "credential", Short: "Manage credentials (keys and their certificates)", Args: cobra.ArbitraryArgs, RunE: groupRun}
	cred.AddCommand(c.credentialAddCmd(), c.credentialListCmd(), c.credentialDeleteCmd(),
		c.credentialStateCmd("disable", "Disable a credential: it signs no more until enabled"),
		c.credentialStateCmd("enable", "Enable a disabled credential"),
		c.credentialStateCmd("unlock", "Unlock a credential locked by wrong PINs or OTPs"))
	audit := &cobra.Command{Use: "audit", Short: "Check the audit chain", Args: cobra.ArbitraryArgs, RunE: groupRun}
	audit.AddCommand(c.auditVerifyCmd())
	client := &cobra.Command{Use: "client", Short: "Manage OAuth2 clients", Args: cobra.ArbitraryArgs, RunE: groupRun}
	client.AddCommand(c.clientAddCmd())
	st := &cobra.Command{Use: "store", Short: "Move the server's state between stores", Args: cobra.ArbitraryArgs, RunE: groupRun}
	st.AddCommand(c.storeMigrateCmd())
	cmd.AddCommand(user, cred, audit, client, st)
	return cmd
}

func (c *cli) storeMigrateCmd() *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "migrate-from-sqlite --from FILE",
		Short: "Copy a SQLite store into the empty PostgreSQL store of rssp.toml",
		Long: `Copy every row of the SQLite database FILE (users, credentials, tokens, SADs,
OAuth2 clients and state, out-of-band authorizations, the audit log with its
hashes) into the PostgreSQL database named by rssp.toml's [store] (driver
"postgres"), which must hold no state yet. The copy is one transaction: on
any error nothing is written. Afterwards the row counts and the last audit
row are compared with FILE's and the audit chain is verified.

Stop the rssp using FILE first. FILE's schema is brought to this program's
version before the copy; its rows are not changed.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if from == "" {
				return errors.New("--from FILE: the SQLite database to copy is required")
			}
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			if cfg.Store.Driver != "postgres" {
				return fmt.Errorf("rssp.toml [store] driver is %q: set driver = \"postgres\" and dsn first", cfg.Store.Driver)
			}
			ctx := context.Background()
			src, err := sqlite.Open(ctx, from)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := app.OpenStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer func() { _ = dst.Close() }()
			pg, ok := dst.(*postgres.DB)
			if !ok {
				return fmt.Errorf("store %T is not PostgreSQL", dst)
			}
			counts, err := pg.ImportSQLite(ctx, src)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(counts))
			for t := range counts {
				names = append(names, t)
			}
			sort.Strings(names)
			for _, t := range names {
				fmt.Fprintf(c.stdout, "%s: %d rows\n", t, counts[t])
			}
			n, err := store.VerifyAudit(ctx, pg)
			if err != nil {
				return fmt.Errorf("copied, but the audit chain does not verify: %w", err)
			}
			fmt.Fprintf(c.stdout, "copied into %s; audit chain intact: %d rows verified\n", app.StoreName(cfg), n)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the SQLite database file to copy (required)")
	return cmd
}

// withService opens the server's state for one admin command.
func (c *cli) withService(f func(ctx context.Context, svc *service.Service) error) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	ctx := context.Background()
	cfg.Log.Level = "error"
	a, err := app.Open(ctx, cfg, app.NewLogger(cfg, c.stderr))
	if err != nil {
		return err
	}
	defer a.Close()
	return f(ctx, a.Service)
}

func (c *cli) userAddCmd() *cobra.Command {
	var pwStdin bool
	var sub string
	cmd := &cobra.Command{
		Use:   "add NAME --password-stdin [--external-subject SUB]",
		Short: "Create a user account; prints its name and ID",
		Long: `Create a user account NAME with the password read from the first line of
standard input (stored as an argon2id hash). Prints the new user's name and ID.
With --external-subject, the access tokens of the external authorization
server (rssp.toml [oauth2] issuer) whose sub claim is SUB act for this user;
such a user may have no password (no --password-stdin): they then log in
only at the external server.`,
		Example: `  echo 'a long password' | rssp admin --config /srv/rssp/rssp.toml user add alice --password-stdin
  rssp admin --config /srv/rssp/rssp.toml user add bob --external-subject 0f3c6e5a-6d1e-4b7f-9d8e-2f1a9c4b7e21`,
		Args: exactArgs(1, "the user's NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			if !pwStdin && sub == "" {
				return usageError{"user add NAME --password-stdin: the password comes from standard input (only a user with --external-subject may have none)"}
			}
			var pw string
			if pwStdin {
				var err error
				if pw, err = readSecret(c.stdin, "password"); err != nil {
					return err
				}
			}
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				u, err := svc.AddUserWithSubject(ctx, args[0], pw, sub)
				if err != nil {
					return describe(err)
				}
				fmt.Fprintf(c.stdout, "user %s created: ID %s\n", u.Name, u.ID)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input (required unless --external-subject)")
	cmd.Flags().StringVar(&sub, "external-subject", "", "the user's subject (sub claim) at the external authorization server")
	return cmd
}

func (c *cli) userExternalSubjectCmd() *cobra.Command {
	var clear bool
	cmd := &cobra.Command{
		Use:   "external-subject NAME [SUB | --clear]",
		Short: "Map a user to their subject at the external authorization server, or remove the mapping",
		Long: `Set the subject (sub claim) by which the access tokens of the external
authorization server (rssp.toml [oauth2] issuer) act for user NAME, or with
--clear remove it. A subject belongs to at most one user.`,
		Example: `  rssp admin --config /srv/rssp/rssp.toml user external-subject alice 0f3c6e5a-6d1e-4b7f-9d8e-2f1a9c4b7e21`,
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(_ *cobra.Command, args []string) error {
			if clear == (len(args) == 2) {
				return usageError{"user external-subject NAME SUB, or NAME --clear"}
			}
			sub := ""
			if len(args) == 2 {
				if sub = args[1]; sub == "" {
					return usageError{"the subject is empty: use --clear to remove it"}
				}
			}
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				if err := svc.SetExternalSubject(ctx, args[0], sub); err != nil {
					return describe(err)
				}
				if sub == "" {
					fmt.Fprintf(c.stdout, "user %s: no external subject\n", args[0])
				} else {
					fmt.Fprintf(c.stdout, "user %s: external subject %s\n", args[0], sub)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the user's external subject")
	return cmd
}

func (c *cli) credentialAddCmd() *cobra.Command {
	var spec service.CredentialSpec
	var key string
	var pinStdin bool
	cmd := &cobra.Command{
		Use:   "add --user NAME --key TYPE --pin-stdin",
		Short: "Create a credential: a key, its certificate and how it is authorized; prints its ID",
		Long: `Create a credential for a user: a new key (in the software keystore or the HSM),
a certificate from the built-in CA, and its authorization factors: the PIN read
from standard input, optionally a TOTP or online OTP and an out-of-band
approval. Prints the new credential ID on stdout; with --otp totp, the
otpauth:// URI for the user's authenticator app on stderr.`,
		Example: `  echo 123456 | rssp admin --config /srv/rssp/rssp.toml credential add --user alice --key rsa-2048 --pin-stdin --multisign 10`,
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			if spec.User == "" || key == "" {
				return usageError{"credential add needs --user NAME and --key TYPE"}
			}
			kt, err := keystore.ParseKeyType(key)
			if err != nil {
				return usageError{err.Error()}
			}
			spec.KeyType = kt
			if pinStdin {
				if spec.PIN, err = readSecret(c.stdin, "PIN"); err != nil {
					return err
				}
			}
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				cred, uri, err := svc.AddCredential(ctx, spec)
				if err != nil {
					return describe(err)
				}
				fmt.Fprintln(c.stdout, cred.ID)
				if uri != "" {
					fmt.Fprintln(c.stderr, uri)
				}
				return nil
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&spec.User, "user", "", "the owner's user `NAME` (required)")
	fs.StringVar(&key, "key", "", "the key `TYPE`: rsa-2048, rsa-3072, ec-p256 or ec-p384 (required)")
	fs.BoolVar(&pinStdin, "pin-stdin", false, "read the credential's PIN from standard input")
	fs.IntVar(&spec.SCAL, "scal", 1, "sole control assurance `LEVEL`: 1 (an authorization covers up to --multisign signatures) or 2 (bound to the hashes, used once)")
	fs.StringVar(&spec.OTP, "otp", "", "an OTP factor of `TYPE` totp (authenticator app) or online (sent by credentials/getChallenge)")
	fs.BoolVar(&spec.OOB, "oob", false, "add an out-of-band approval factor (PasswordOOB)")
	fs.IntVar(&spec.Multisign, "multisign", 1, "`N` signatures per authorization (SCAL1)")
	fs.StringVar(&spec.Description, "description", "", "the credential's description `TEXT` (the key's label in programs)")
	fs.StringVar(&spec.SignatureQualifier, "signature-qualifier", "", "the credential's signature qualifier `Q`, e.g. eu_eidas_qes, eu_eidas_aes or eu_eidas_qeseal (default: none)")
	fs.StringVar(&spec.AuthMode, "auth", "explicit", "how it is authorized (`MODE`): explicit (PIN/OTP in credentials/authorize), oauth2code (the consent page only) or fido (the consent page, with the owner's security key as a factor)")
	_ = cmd.RegisterFlagCompletionFunc("key", cobra.FixedCompletions([]string{"rsa-2048", "rsa-3072", "ec-p256", "ec-p384"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("otp", cobra.FixedCompletions([]string{"totp", "online"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("signature-qualifier", cobra.FixedCompletions(csc.SignatureQualifiers, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("auth", cobra.FixedCompletions([]string{"explicit", "oauth2code", "fido"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (c *cli) credentialListCmd() *cobra.Command {
	var user string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List credentials with their owners' names",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				creds, err := svc.Credentials(ctx, user)
				if err != nil {
					return describe(err)
				}
				users, err := svc.Users(ctx)
				if err != nil {
					return err
				}
				names := map[string]string{}
				for _, u := range users {
					names[u.ID] = u.Name
				}
				return writeCredentials(c.stdout, creds, names, asJSON)
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only the credentials of the user `NAME` (default: everyone's)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array (for scripts) instead of a table")
	return cmd
}

// credentialJSON is a credential in credential list --json.
type credentialJSON struct {
	ID          string    `json:"id"`
	User        string    `json:"user"`
	UserID      string    `json:"user_id"`
	Key         string    `json:"key"`
	SCAL        int       `json:"scal"`
	Multisign   int       `json:"multisign"`
	Auth        string    `json:"auth"`
	OTP         string    `json:"otp,omitempty"`
	OOB         bool      `json:"oob"`
	State       string    `json:"state"`
	Qualifier   string    `json:"signature_qualifier,omitempty"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
}

// writeCredentials prints the credential table (or JSON), owners by name.
func writeCredentials(w io.Writer, creds []store.Credential, names map[string]string, asJSON bool) error {
	rows := make([]credentialJSON, 0, len(creds))
	for _, c := range creds {
		st := "enabled"
		switch {
		case c.Locked:
			st = "locked"
		case c.Disabled:
			st = "disabled"
		}
		rows = append(rows, credentialJSON{ID: c.ID, User: names[c.UserID], UserID: c.UserID, Key: c.KeyType, SCAL: c.SCAL,
			Multisign: c.Multisign, Auth: c.AuthMode, OTP: c.OTPType, OOB: c.OOB, State: st, Qualifier: c.SignatureQualifier,
			Description: c.Description, Created: c.CreatedAt})
	}
	if asJSON {
		return writeJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tKEY\tSCAL\tMULTISIGN\tAUTH\tOTP\tSTATE\tQUALIFIER\tDESCRIPTION")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", r.ID, orDash(r.User), r.Key, r.SCAL, r.Multisign, r.Auth,
			orDash(r.OTP), r.State, orDash(r.Qualifier), r.Description)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) credentialDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a credential and destroy its key in the keystore or HSM",
		Long: `Delete a credential: its key is destroyed in the software keystore or the HSM,
its pending authorizations end, and the deletion is audited (the audit log
keeps the credential's history). There is no undo.`,
		Args: exactArgs(1, "the credential ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				if err := svc.DeleteCredential(ctx, args[0]); err != nil {
					return describe(err)
				}
				fmt.Fprintf(c.stdout, "credential %s: deleted, key destroyed\n", args[0])
				return nil
			})
		},
	}
}

func (c *cli) userListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users: name, ID, state, number of credentials",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				users, err := svc.Users(ctx)
				if err != nil {
					return err
				}
				creds, err := svc.Credentials(ctx, "")
				if err != nil {
					return err
				}
				count := map[string]int{}
				for _, cr := range creds {
					count[cr.UserID]++
				}
				type userJSON struct {
					Name        string    `json:"name"`
					ID          string    `json:"id"`
					State       string    `json:"state"`
					Credentials int       `json:"credentials"`
					Created     time.Time `json:"created"`
					Subject     string    `json:"externalSubject,omitempty"`
				}
				rows := make([]userJSON, 0, len(users))
				for _, u := range users {
					st := "enabled"
					if u.Disabled {
						st = "disabled"
					}
					rows = append(rows, userJSON{u.Name, u.ID, st, count[u.ID], u.CreatedAt, u.ExternalSubject})
				}
				if asJSON {
					return writeJSON(c.stdout, rows)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tID\tSTATE\tCREDENTIALS\tCREATED")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Name, r.ID, r.State, r.Credentials, r.Created.Local().Format(time.DateTime))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array (for scripts) instead of a table")
	return cmd
}

// userStateCmd is user disable or enable.
func (c *cli) userStateCmd(verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactArgs(1, "the user's NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				if err := svc.SetUserDisabled(ctx, args[0], verb == "disable"); err != nil {
					return describe(err)
				}
				fmt.Fprintf(c.stdout, "user %s: %sd\n", args[0], verb)
				return nil
			})
		},
	}
}

func (c *cli) userRequireFIDOCmd() *cobra.Command {
	var off bool
	cmd := &cobra.Command{
		Use:   "require-fido NAME",
		Short: "Require a security key (FIDO2) at the user's logins on the service's pages",
		Long: `Require the user to confirm each login on the service's pages (the OAuth2
login, the security keys page) with one of their security keys. A user who
has security keys is always asked for one; this makes it mandatory: a user
required to use one who has none registered cannot log in, so let them
register their key first (on https://HOST/oauth2/keys). --off lifts the
requirement.`,
		Example: `  rssp admin --config /srv/rssp/rssp.toml user require-fido alice`,
		Args:    exactArgs(1, "the user's NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				if err := svc.SetRequireFIDO(ctx, args[0], !off); err != nil {
					return describe(err)
				}
				if off {
					fmt.Fprintf(c.stdout, "user %s: a security key is no longer required\n", args[0])
				} else {
					fmt.Fprintf(c.stdout, "user %s: a security key is required at login\n", args[0])
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&off, "off", false, "lift the requirement instead")
	return cmd
}

func (c *cli) userKeysCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keys NAME",
		Short: "List a user's security keys (FIDO2): name, authenticator model (AAGUID), added, last used",
		Args:  exactArgs(1, "the user's NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				keys, err := svc.WebAuthnKeys(ctx, args[0])
				if err != nil {
					return describe(err)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tAAGUID\tTRANSPORTS\tCOUNTER\tADDED\tLAST USED")
				for _, k := range keys {
					last := "never"
					if !k.LastUsedAt.IsZero() {
						last = k.LastUsedAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%x\t%s\t%d\t%s\t%s\n", k.Name, k.AAGUID, orDash(strings.Join(k.Transports, ",")),
						k.SignCount, k.CreatedAt.Format(time.RFC3339), last)
				}
				return tw.Flush()
			})
		},
	}
}

func (c *cli) userPasswordCmd() *cobra.Command {
	var pwStdin bool
	cmd := &cobra.Command{
		Use:   "password NAME --password-stdin",
		Short: "Set a user's password (read from standard input); their logins end",
		Args:  exactArgs(1, "the user's NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			if !pwStdin {
				return usageError{"user password NAME --password-stdin: the password comes from standard input"}
			}
			pw, err := readSecret(c.stdin, "password")
			if err != nil {
				return err
			}
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				if err := svc.SetPassword(ctx, args[0], pw); err != nil {
					return describe(err)
				}
				fmt.Fprintf(c.stdout, "user %s: password changed; their logins ended\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the new password from standard input (required)")
	return cmd
}

func (c *cli) userDeleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user (refused while they have credentials, unless --force)",
		Long: `Delete a user and their logins. A user who still has credentials is refused;
with --force their credentials are deleted first and their keys destroyed.
The audit log keeps the user's history.`,
		Args: exactArgs(1, "the user's NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				deleted, err := svc.DeleteUser(ctx, args[0], force)
				for _, id := range deleted {
					fmt.Fprintf(c.stdout, "credential %s: deleted, key destroyed\n", id)
				}
				if err != nil {
					return describe(err)
				}
				fmt.Fprintf(c.stdout, "user %s: deleted\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "also delete the user's credentials and destroy their keys")
	return cmd
}

// credentialStateCmd is credential disable, enable or unlock.
func (c *cli) credentialStateCmd(verb, short string) *cobra.Command {
	done := map[string]string{"disable": "disabled", "enable": "enabled", "unlock": "unlocked"}[verb]
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  exactArgs(1, "the credential ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			id := args[0]
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				var err error
				switch verb {
				case "disable":
					err = svc.SetDisabled(ctx, id, true)
				case "enable":
					err = svc.SetDisabled(ctx, id, false)
				default:
					err = svc.Unlock(ctx, id)
				}
				if err != nil {
					return fmt.Errorf("credential %s: %w", id, err)
				}
				fmt.Fprintf(c.stdout, "credential %s: %s\n", id, done)
				return nil
			})
		},
	}
}

func (c *cli) auditVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain; names the first row that was changed",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			return c.withService(func(ctx context.Context, svc *service.Service) error {
				n, err := svc.VerifyAudit(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "audit chain intact: %d rows verified\n", n)
				return nil
			})
		},
	}
}

// describe returns the client-facing description of a service error.
func describe(err error) error {
	var p *service.Problem
	if errors.As(err, &p) {
		return errors.New(p.Description)
	}
	return err
}

func (c *cli) clientAddCmd() *cobra.Command {
	var spec service.ClientSpec
	var secretStdin bool
	cmd := &cobra.Command{
		Use:   "add --id ID --redirect-uri URI",
		Short: "Register an OAuth2 client",
		Long: `Register an OAuth2 client of the server's authorization server. A public client
(--public: desktop and mobile programs) has no secret and uses PKCE. A
confidential client's secret is generated and printed once on stdout (or read
from standard input with --secret-stdin); only its argon2id hash is stored.
Loopback redirect URIs (http://127.0.0.1/..., http://[::1]/...) match any port.`,
		Example: `  rssp admin --config /srv/rssp/rssp.toml client add --id desktop --redirect-uri http://127.0.0.1/callback --public`,
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			return c.clientAdd(spec, secretStdin)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&spec.ID, "id", "", "the client `ID` (required)")
	fs.StringVar(&spec.Name, "name", "", "the `NAME` shown on the consent page (default: the ID)")
	fs.StringArrayVar(&spec.RedirectURIs, "redirect-uri", nil, "a redirect `URI`; repeatable (http://127.0.0.1/... matches any port)")
	fs.BoolVar(&spec.Public, "public", false, "a public client: no secret, PKCE only")
	fs.BoolVar(&secretStdin, "secret-stdin", false, "read the confidential client's secret from standard input")
	fs.StringVar(&spec.User, "user", "", "a confidential client: the account (user `NAME`) its client_credentials tokens act for")
	return cmd
}

// clientAdd registers an OAuth2 client.
func (c *cli) clientAdd(spec service.ClientSpec, secretStdin bool) error {
	if spec.ID == "" || (len(spec.RedirectURIs) == 0 && spec.User == "") {
		return usageError{"client add --id ID --redirect-uri URI [--redirect-uri URI2 ...] [--public | --secret-stdin] [--name NAME] [--user NAME]"}
	}
	if secretStdin {
		if spec.Public {
			return usageError{"--secret-stdin is for confidential clients; a --public client has no secret"}
		}
		var err error
		if spec.Secret, err = readSecret(c.stdin, "client secret"); err != nil {
			return err
		}
		if spec.Secret == "" {
			return errors.New("client add: the client secret read from standard input is empty")
		}
	}
	return c.withService(func(ctx context.Context, svc *service.Service) error {
		cl, sec, err := svc.AddOAuthClient(ctx, spec)
		if err != nil {
			return fmt.Errorf("client add: %w", describe(err))
		}
		switch {
		case cl.Public():
			fmt.Fprintln(c.stdout, cl.ID)
			fmt.Fprintf(c.stderr, "public client %s registered (PKCE S256, no secret)\n", cl.ID)
		case secretStdin:
			fmt.Fprintln(c.stdout, cl.ID)
			fmt.Fprintf(c.stderr, "confidential client %s registered with the secret from standard input (stored hashed)\n", cl.ID)
		default:
			fmt.Fprintln(c.stdout, sec)
			fmt.Fprintf(c.stderr, "confidential client %s registered; its secret, above, is shown only now (stored hashed)\n", cl.ID)
		}
		return nil
	})
}
