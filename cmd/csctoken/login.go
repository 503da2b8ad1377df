package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
)

// loginOptions are the flags of csctoken login.
type loginOptions struct {
	service       string
	passwordStdin bool
}

// cmdLogin logs in to each service and keeps the token (refresh token
// included) where the module finds it: auth = "basic" with the user name of
// the config and a password from the terminal (or stdin, auth/login with
// rememberMe); auth = "oauth2" in the browser (the service's login and
// consent pages; the URL is printed too, for a browser elsewhere).
func (c *cli) cmdLogin(o loginOptions) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	svcs, err := pick(cfg, o.service)
	if err != nil {
		return err
	}
	failed := 0
	for _, sc := range svcs {
		if err := c.login(sc, o.passwordStdin); err != nil {
			fmt.Fprintf(c.stderr, "csctoken: login to %q failed: %v\n", sc.Name, err)
			failed++
		}
	}
	if failed > 0 {
		return silentError{fmt.Sprintf("%d login(s) failed", failed)}
	}
	return nil
}

func (c *cli) login(sc config.Service, pwStdin bool) error {
	s, err := c.service(sc)
	if err != nil {
		return err
	}
	if sc.Auth == config.AuthOAuth2 {
		return c.browserLogin(sc, s)
	}
	prompt := fmt.Sprintf("Password of %s at %s (%s): ", sc.Username, sc.Name, sc.URL)
	pw, err := c.secret(prompt, "password", "--password-stdin", pwStdin)
	if err != nil {
		return err
	}
	tok, err := s.PasswordLogin(c.ctx, pw)
	if err != nil {
		if errors.Is(err, cscservice.ErrWrongPassword) {
			return fmt.Errorf("wrong user name or password for %q at %s", sc.Username, sc.URL)
		}
		return err
	}
	where := c.tokenPlace(c.ctx, s)
	fmt.Fprintf(c.stdout, "Logged in to %q as %s; %s; token kept in %s.\n", sc.Name, sc.Username, tokenLife(tok), where)
	return nil
}

// browserLogin logs in to an oauth2 service in the browser.
func (c *cli) browserLogin(sc config.Service, s *cscservice.Service) error {
	fmt.Fprintf(c.stderr, "Logging in to %q (%s) in the browser...\n", sc.Name, sc.URL)
	tok, err := s.BrowserLogin(c.ctx)
	if err != nil {
		if errors.Is(err, module.ErrCanceled) {
			return fmt.Errorf("the login was declined or not completed in the browser: %w", err)
		}
		return err
	}
	where := c.tokenPlace(c.ctx, s)
	fmt.Fprintf(c.stdout, "Logged in to %q%s; %s; token kept in %s.\n", sc.Name, asUser(sc), tokenLife(tok), where)
	return nil
}

// asUser is " as NAME" when the config names the user.
func asUser(sc config.Service) string {
	if sc.Username == "" {
		return ""
	}
	return " as " + sc.Username
}

// tokenLife says how long a login lasts.
func tokenLife(t *cscclient.Token) string {
	if t == nil {
		return "no token"
	}
	s := "access token does not expire"
	if !t.Expiry.IsZero() {
		s = "access token valid until " + t.Expiry.Local().Format(time.DateTime)
		if !t.Valid(0) {
			s = "access token expired at " + t.Expiry.Local().Format(time.DateTime)
		}
	}
	if t.RefreshToken != "" {
		s += ", renewed silently (refresh token)"
	}
	return s
}

// tokenPlace says where a service's token is kept.
func (c *cli) tokenPlace(ctx context.Context, s *cscservice.Service) string {
	loc, err := s.TokenLocation(ctx)
	if err != nil {
		return "an unknown place (" + err.Error() + ")"
	}
	switch loc.Backend {
	case tokenstore.BackendKeyring:
		return "the OS keyring"
	case tokenstore.BackendFile:
		return "the file " + loc.Path
	}
	return "no place (not stored)"
}

// logoutOptions are the flags of csctoken logout.
type logoutOptions struct{ service string }

// cmdLogout revokes the tokens at the service (auth/revoke, or oauth2/revoke
// for auth = "oauth2") and forgets them.
func (c *cli) cmdLogout(o logoutOptions) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	svcs, err := pick(cfg, o.service)
	if err != nil {
		return err
	}
	failed := 0
	for _, sc := range svcs {
		s, err := c.service(sc)
		if err != nil {
			fmt.Fprintf(c.stderr, "csctoken: %q: %v\n", sc.Name, err)
			failed++
			continue
		}
		tok, err := s.TokenStatus(c.ctx)
		if err == nil && tok == nil {
			fmt.Fprintf(c.stdout, "Not logged in to %q.\n", sc.Name)
			continue
		}
		if err := s.Logout(c.ctx); err != nil {
			if left, lerr := s.TokenStatus(c.ctx); lerr != nil || left != nil {
				fmt.Fprintf(c.stderr, "csctoken: %q: logout failed, the token is still kept here: %v\n", sc.Name, errors.Join(err, lerr))
				failed++
				continue
			}
			// Offline (on a train): the token is forgotten all the same;
			// the service keeps it valid until it expires.
			until := "until it expires"
			if tok != nil && !tok.Expiry.IsZero() {
				until = "until " + tok.Expiry.Local().Format(time.DateTime)
			}
			if tok != nil && tok.RefreshToken != "" {
				until += " (its refresh token longer)"
			}
			fmt.Fprintf(c.stdout, "Logged out of %q: token forgotten here.\n", sc.Name)
			fmt.Fprintf(c.stderr, "csctoken: %q: the service could not revoke the token (%v); it stays valid there %s.\n", sc.Name, err, until)
			continue
		}
		fmt.Fprintf(c.stdout, "Logged out of %q: token revoked and forgotten.\n", sc.Name)
	}
	if failed > 0 {
		return silentError{fmt.Sprintf("%d logout(s) failed", failed)}
	}
	return nil
}
