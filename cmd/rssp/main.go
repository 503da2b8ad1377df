// Command rssp is csctoken's remote signing server: a CSC API v2 service
// with its own keys (software keystore or PKCS#11 HSM), CA and TSA.
//
//	rssp init --dir D [--listen ADDR] [--name NAME]
//	          [--backend pkcs11 --pkcs11-module PATH --pkcs11-token LABEL --pkcs11-pin-file FILE]
//	rssp serve --config D/rssp.toml
//	rssp admin --config D/rssp.toml user add NAME --password-stdin
//	rssp admin --config F credential add --user NAME --key rsa-2048|rsa-3072|ec-p256|ec-p384 --pin-stdin
//	           [--scal 1|2] [--otp totp|online] [--oob] [--auth explicit|oauth2code]
//	           [--multisign N] [--description TEXT]
//	rssp admin --config F credential list [--user NAME]
//	rssp admin --config F credential disable|enable|unlock ID
//	rssp admin --config F audit verify
//	rssp admin --config F client add --id ID --redirect-uri URI [--redirect-uri URI2 ...]
//	           [--public | --secret-stdin] [--name NAME] [--user NAME]
//	rssp version
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/csctoken/csctoken/rssp/app"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

// version is set by the Makefile (-ldflags -X main.version=...).
var version = "dev"

const usage = `usage:
  rssp init --dir D [--listen ADDR] [--name NAME]
            [--backend pkcs11 --pkcs11-module PATH --pkcs11-token LABEL --pkcs11-pin-file FILE]
  rssp serve --config D/rssp.toml
  rssp admin --config F user add NAME --password-stdin
  rssp admin --config F credential add --user NAME --key rsa-2048|rsa-3072|ec-p256|ec-p384 --pin-stdin
                 [--scal 1|2] [--otp totp|online] [--oob] [--auth explicit|oauth2code]
                 [--multisign N] [--description TEXT]
  rssp admin --config F credential list [--user NAME]
  rssp admin --config F credential disable|enable|unlock ID
  rssp admin --config F audit verify
  rssp admin --config F client add --id ID --redirect-uri URI [--redirect-uri URI2 ...]
                 [--public | --secret-stdin] [--name NAME] [--user NAME]
  rssp version
`

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rssp:", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"missing command"}
	}
	switch args[0] {
	case "init":
		return cmdInit(args[1:], stdout)
	case "serve":
		return cmdServe(args[1:])
	case "admin":
		return cmdAdmin(args[1:], stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "rssp", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{"unknown command " + args[0]}
}

// parse parses flags anywhere among the arguments and returns the others.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func cmdInit(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to create the setup in")
	var o app.InitOptions
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8443", "address to listen on")
	fs.StringVar(&o.Name, "name", "csctoken RSSP", "service name")
	backend := fs.String("backend", "soft", "soft or pkcs11")
	fs.StringVar(&o.PKCS11Module, "pkcs11-module", "", "PKCS#11 module path")
	fs.StringVar(&o.PKCS11Token, "pkcs11-token", "", "PKCS#11 token label")
	fs.StringVar(&o.PKCS11PINFile, "pkcs11-pin-file", "", "file holding the token's user PIN")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *dir == "" || len(pos) > 0 {
		return usageError{"init needs --dir D and no other arguments"}
	}
	switch *backend {
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
	r, err := app.Init(context.Background(), *dir, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rssp set up in %s\n  config:      %s\n  database:    %s\n  KEK:         %s (keep it secret; back it up)\n  TLS root:    %s (clients trust this)\n  CA root:     %s\nstart it with: rssp serve --config %s\n",
		*dir, r.Config, r.Database, r.KEK, r.TLSCA, r.CARoot, r.Config)
	return nil
}

func loadConfig(fs *flag.FlagSet, args []string) (config.Config, []string, error) {
	cfgPath := fs.String("config", "", "path of rssp.toml")
	pos, err := parse(fs, args)
	if err != nil {
		return config.Config{}, nil, err
	}
	if *cfgPath == "" {
		return config.Config{}, nil, usageError{"--config F is required"}
	}
	c, err := config.Load(*cfgPath)
	return c, pos, err
}

func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c, pos, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"serve takes no arguments"}
	}
	log := app.NewLogger(c, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Open(ctx, c, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := a.Listen()
	if err != nil {
		return err
	}
	log.Info("rssp serving", "version", version, "url", c.PublicURL+"/csc/v2", "backend", c.Keystore.Backend)
	return a.Serve(ctx, ln)
}

func readSecret(stdin io.Reader, what string) (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the %s from standard input: %w", what, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func cmdAdmin(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	// admin-level flags; sub-command flags are parsed below from the rest.
	var rest []string
	cfgArgs := []string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--config" || a == "-config" {
			if i+1 < len(args) {
				cfgArgs = append(cfgArgs, a, args[i+1])
				i++
			}
			continue
		}
		if strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config=") {
			cfgArgs = append(cfgArgs, a)
			continue
		}
		rest = append(rest, a)
	}
	c, _, err := loadConfig(fs, cfgArgs)
	if err != nil {
		return err
	}
	if len(rest) < 2 {
		if len(rest) == 1 && rest[0] == "client" {
			return usageError{"client add --id ID --redirect-uri URI [--public] [--name NAME]"}
		}
		return usageError{"admin needs a command"}
	}
	ctx := context.Background()
	c.Log.Level = "error"
	a, err := app.Open(ctx, c, app.NewLogger(c, os.Stderr))
	if err != nil {
		return err
	}
	defer a.Close()
	svc := a.Service
	cmd, sub := rest[0]+" "+rest[1], rest[2:]
	switch cmd {
	case "user add":
		fs := flag.NewFlagSet("user add", flag.ContinueOnError)
		pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
		pos, err := parse(fs, sub)
		if err != nil {
			return err
		}
		if len(pos) != 1 || !*pwStdin {
			return usageError{"user add NAME --password-stdin"}
		}
		pw, err := readSecret(stdin, "password")
		if err != nil {
			return err
		}
		u, err := svc.AddUser(ctx, pos[0], pw)
		if err != nil {
			return describe(err)
		}
		fmt.Fprintln(stdout, u.ID)
		return nil
	case "credential add":
		fs := flag.NewFlagSet("credential add", flag.ContinueOnError)
		var spec service.CredentialSpec
		fs.StringVar(&spec.User, "user", "", "owner")
		key := fs.String("key", "", "rsa-2048, rsa-3072, ec-p256 or ec-p384")
		pinStdin := fs.Bool("pin-stdin", false, "read the PIN from standard input")
		fs.IntVar(&spec.SCAL, "scal", 1, "1 or 2")
		fs.StringVar(&spec.OTP, "otp", "", "totp (authenticator app) or online (sent by credentials/getChallenge)")
		fs.BoolVar(&spec.OOB, "oob", false, "add an out-of-band approval factor (PasswordOOB)")
		fs.IntVar(&spec.Multisign, "multisign", 1, "signatures per authorization")
		fs.StringVar(&spec.Description, "description", "", "label")
		fs.StringVar(&spec.AuthMode, "auth", "explicit", "explicit or oauth2code")
		pos, err := parse(fs, sub)
		if err != nil {
			return err
		}
		if len(pos) != 0 || spec.User == "" || *key == "" {
			return usageError{"credential add --user NAME --key TYPE --pin-stdin [...]"}
		}
		kt, err := keystore.ParseKeyType(*key)
		if err != nil {
			return usageError{err.Error()}
		}
		spec.KeyType = kt
		if *pinStdin {
			if spec.PIN, err = readSecret(stdin, "PIN"); err != nil {
				return err
			}
		}
		cred, uri, err := svc.AddCredential(ctx, spec)
		if err != nil {
			return describe(err)
		}
		fmt.Fprintln(stdout, cred.ID)
		if uri != "" {
			fmt.Fprintln(stderr, uri)
		}
		return nil
	case "credential list":
		fs := flag.NewFlagSet("credential list", flag.ContinueOnError)
		user := fs.String("user", "", "only this user's")
		if _, err := parse(fs, sub); err != nil {
			return err
		}
		creds, err := svc.Credentials(ctx, *user)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSER\tKEY\tSCAL\tMULTISIGN\tAUTH\tOTP\tSTATE\tDESCRIPTION")
		for _, c := range creds {
			st := "enabled"
			switch {
			case c.Locked:
				st = "locked"
			case c.Disabled:
				st = "disabled"
			}
			otp := c.OTPType
			if otp == "" {
				otp = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", c.ID, c.UserID, c.KeyType, c.SCAL, c.Multisign, c.AuthMode, otp, st, c.Description)
		}
		return tw.Flush()
	case "credential disable", "credential enable", "credential unlock":
		if len(sub) != 1 {
			return usageError{cmd + " ID"}
		}
		switch rest[1] {
		case "disable":
			err = svc.SetDisabled(ctx, sub[0], true)
		case "enable":
			err = svc.SetDisabled(ctx, sub[0], false)
		default:
			err = svc.Unlock(ctx, sub[0])
		}
		if err != nil {
			return fmt.Errorf("credential %s: %w", sub[0], err)
		}
		fmt.Fprintf(stdout, "credential %s: %s\n", sub[0], map[string]string{"disable": "disabled", "enable": "enabled", "unlock": "unlocked"}[rest[1]])
		return nil
	case "audit verify":
		n, err := svc.VerifyAudit(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "audit chain intact: %d rows verified\n", n)
		return nil
	case "client add":
		return clientAdd(ctx, svc, sub, stdin, stdout, stderr)
	}
	return usageError{"unknown admin command " + cmd}
}

// describe returns the client-facing description of a service error.
func describe(err error) error {
	var p *service.Problem
	if errors.As(err, &p) {
		return errors.New(p.Description)
	}
	return err
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// clientAdd registers an OAuth2 client. A confidential client's secret is
// generated and printed once on standard output (or read from standard
// input with --secret-stdin); only its argon2id hash is stored.
func clientAdd(ctx context.Context, svc *service.Service, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client add", flag.ContinueOnError)
	var spec service.ClientSpec
	fs.StringVar(&spec.ID, "id", "", "client ID")
	fs.StringVar(&spec.Name, "name", "", "name shown on the consent page (default: the ID)")
	fs.Var((*stringList)(&spec.RedirectURIs), "redirect-uri", "redirect URI (repeatable; http://127.0.0.1/... matches any port)")
	fs.BoolVar(&spec.Public, "public", false, "public client: no secret, PKCE only")
	secretStdin := fs.Bool("secret-stdin", false, "read the confidential client's secret from standard input")
	fs.StringVar(&spec.User, "user", "", "confidential client: the account its client_credentials tokens act for")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || spec.ID == "" || (len(spec.RedirectURIs) == 0 && spec.User == "") {
		return usageError{"client add --id ID --redirect-uri URI [--redirect-uri URI2 ...] [--public | --secret-stdin] [--name NAME] [--user NAME]"}
	}
	if *secretStdin {
		if spec.Public {
			return usageError{"--secret-stdin is for confidential clients; a --public client has no secret"}
		}
		if spec.Secret, err = readSecret(stdin, "client secret"); err != nil {
			return err
		}
		if spec.Secret == "" {
			return errors.New("client add: the client secret read from standard input is empty")
		}
	}
	c, sec, err := svc.AddOAuthClient(ctx, spec)
	if err != nil {
		return fmt.Errorf("client add: %w", describe(err))
	}
	switch {
	case c.Public():
		fmt.Fprintln(stdout, c.ID)
		fmt.Fprintf(stderr, "public client %s registered (PKCE S256, no secret)\n", c.ID)
	case *secretStdin:
		fmt.Fprintln(stdout, c.ID)
		fmt.Fprintf(stderr, "confidential client %s registered with the secret from standard input (stored hashed)\n", c.ID)
	default:
		fmt.Fprintln(stdout, sec)
		fmt.Fprintf(stderr, "confidential client %s registered; its secret, above, is shown only now (stored hashed)\n", c.ID)
	}
	return nil
}
