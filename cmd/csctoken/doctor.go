package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
)

// report prints doctor's findings and counts the problems.
type report struct {
	c        *cli
	problems int
}

func (r *report) section(format string, args ...any) {
	fmt.Fprintf(r.c.stdout, format+"\n", args...)
}

func (r *report) ok(format string, args ...any) {
	fmt.Fprintf(r.c.stdout, "  ok       "+format+"\n", args...)
}

func (r *report) note(format string, args ...any) {
	fmt.Fprintf(r.c.stdout, "  note     "+format+"\n", args...)
}

func (r *report) problem(format string, args ...any) {
	r.problems++
	fmt.Fprintf(r.c.stdout, "  PROBLEM  "+format+"\n", args...)
}

// cmdDoctor shows what the module would see: the config file and its
// problems, the token store, and per slot the token, the service's
// reachability, the login and the objects. It fails when it found a
// problem.
func (c *cli) cmdDoctor() error {
	r := &report{c: c}
	defer func() {
		fmt.Fprintln(c.stdout)
		if r.problems == 0 {
			fmt.Fprintln(c.stdout, "No problems found.")
		} else {
			fmt.Fprintf(c.stdout, "%d problem(s) found.\n", r.problems)
		}
	}()
	fail := func() error {
		if r.problems > 0 {
			return silentError{fmt.Sprintf("%d problem(s)", r.problems)}
		}
		return nil
	}

	r.section("config")
	path, err := c.findConfig()
	switch {
	case err != nil:
		r.problem("%v", err)
		return fail()
	case path == "":
		r.problem("no config file: looked at $%s, %s", config.EnvConfig, strings.Join(config.Candidates(), ", "))
		return fail()
	}
	r.ok("file %s (%s)", path, c.configSource())
	cfg, cfgErr := config.Load(path)
	var probs config.Errors
	switch {
	case errors.As(cfgErr, &probs):
		for _, p := range probs {
			key := p.Key
			if key == "" {
				key = "(file)"
			}
			r.problem("%s: %s", key, p.Msg)
		}
		r.note("a [[service]] with a problem gets no slot; the others work")
	case cfgErr != nil:
		r.problem("%v", cfgErr)
		return fail()
	}
	switch {
	case os.Getenv(module.EnvLog) != "":
		r.note("module log: %s (from $%s)", os.Getenv(module.EnvLog), module.EnvLog)
	case cfg.Log != "":
		r.note("module log: %s", cfg.Log)
	default:
		r.note("module log: off (set `log = \"/path\"` or $%s to turn it on)", module.EnvLog)
	}
	if cfg.CacheDir != "" {
		r.note("cache of public objects: %s", cfg.CacheDir)
	}
	if len(cfg.Services) == 0 {
		r.problem("no usable [[service]]: the module has no slot")
	}

	r.section("token store")
	store, err := c.tokenStore()
	if err != nil {
		r.problem("%v", err)
		return fail()
	}
	if err := store.KeyringStatus(c.ctx); err != nil {
		r.note("OS keyring not used (%v); tokens are kept in 0600 files under %s", err, store.Dir())
	} else {
		r.ok("OS keyring available")
	}

	p, err := c.openModule(cfg, cfgErr)
	if err != nil {
		r.problem("%v", err)
		return fail()
	}
	defer p.close()
	slots, err := p.m.GetSlotList(true)
	if err != nil {
		r.problem("C_GetSlotList: %v", err)
		return fail()
	}
	for _, id := range slots {
		c.doctorSlot(r, p, id, cfg.Services[id])
	}
	return fail()
}

// configSource says how the config file was found.
func (c *cli) configSource() string {
	switch {
	case c.configPath != "":
		return "--config"
	case os.Getenv(config.EnvConfig) != "":
		return "$" + config.EnvConfig
	}
	return "default location"
}

func (c *cli) doctorSlot(r *report, p *p11, id module.SlotID, sc config.Service) {
	fmt.Fprintln(c.stdout)
	r.section("slot %d: %q at %s (auth %s, user %s, credential_auth %s)", id, sc.Name, sc.URL, sc.Auth, orNone(sc.Username), sc.CredentialAuth)
	if len(sc.FailoverURLs) > 0 {
		r.ok("failover to %s when %s fails", strings.Join(sc.FailoverURLs, ", "), sc.URL)
	}
	ti, err := p.m.GetTokenInfo(id)
	if err != nil {
		r.problem("C_GetTokenInfo: %v", err)
		return
	}
	var flags []string
	if ti.Flags&ck.CKF_LOGIN_REQUIRED != 0 {
		flags = append(flags, "login required (programs ask for the credential PIN)")
	}
	if ti.Flags&ck.CKF_PROTECTED_AUTHENTICATION_PATH != 0 {
		flags = append(flags, "protected authentication path (the browser collects the factors)")
	}
	r.ok("token %q, serial %s: %s", label(ti.Label[:]), label(ti.SerialNumber[:]), strings.Join(flags, ", "))
	switch {
	case ti.Flags&ck.CKF_USER_PIN_LOCKED != 0:
		r.problem("the PIN is locked")
	case ti.Flags&ck.CKF_USER_PIN_FINAL_TRY != 0:
		r.note("one PIN attempt left")
	}

	if sc.CredentialAuth == config.CredentialAuthBrowser && sc.ClientID == "" {
		r.problem(`credential_auth = "browser" needs client_id (the OAuth2 client registered at the service): signatures will fail`)
	}
	s, err := c.service(sc)
	if err != nil {
		r.problem("service unusable: %v", err)
		return
	}
	if f, err := cscservice.ReadLastFailure(sc); err == nil && f != nil {
		r.note("last failure: %s", describeFailure(f))
	}
	if info, err := s.Info(c.ctx); err != nil {
		r.problem("service unreachable: %v", err)
	} else {
		r.ok("service reachable: %q, CSC %s, auth types %s", info.Name, info.Specs, strings.Join(info.AuthType, ", "))
	}
	tok, err := s.TokenStatus(c.ctx)
	switch {
	case err != nil:
		r.problem("token store: %v", err)
	case tok == nil:
		r.problem("not logged in to the service: run `%s`", loginHint(sc.Name))
	default:
		r.ok("logged in%s: %s; token kept in %s", asUser(sc), tokenLife(tok), c.tokenPlace(c.ctx, s))
	}

	listed := false
	if err := p.m.Refresh(c.ctx, id); err != nil {
		switch ck.Error(ck.RV(err)) {
		case ck.CKR_USER_NOT_LOGGED_IN:
			if tok != nil {
				r.problem("the login expired or was revoked: run `%s`", loginHint(sc.Name))
			}
		default:
			r.problem("listing the credentials failed: %v", err)
		}
		r.note("showing the objects of the last listing cached on disk, if any")
	} else {
		listed = true
		r.ok("credentials listed")
	}
	h, err := p.m.OpenSession(id, ck.CKF_SERIAL_SESSION)
	if err != nil {
		r.problem("C_OpenSession: %v", err)
		return
	}
	defer func() { _ = p.m.CloseSession(h) }()
	objs, err := p.find(h)
	if err != nil {
		r.problem("%v", err)
		return
	}
	var userCerts, caCerts, pubKeys, profiles, others int
	now := time.Now()
	for _, o := range objs {
		cls, err := p.attr(h, o, ck.CKA_CLASS)
		if err != nil || len(cls) != ck.ULongSize {
			others++
			continue
		}
		switch ck.ULong(cls) {
		case ck.CKO_CERTIFICATE:
			cat, _ := p.attr(h, o, ck.CKA_CERTIFICATE_CATEGORY)
			if len(cat) == ck.ULongSize && ck.ULong(cat) == ck.CK_CERTIFICATE_CATEGORY_AUTHORITY {
				caCerts++
				continue
			}
			userCerts++
			l, _ := p.attr(h, o, ck.CKA_LABEL)
			der, _ := p.attr(h, o, ck.CKA_VALUE)
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				r.problem("certificate %q unreadable: %v", l, err)
				continue
			}
			v := certValidity(cert, now)
			if now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
				r.problem("key %q: %s", l, v)
			} else {
				r.ok("key %q: %s, %s", l, cert.Subject, v)
			}
		case ck.CKO_PUBLIC_KEY:
			pubKeys++
		case ck.CKO_PROFILE:
			profiles++
		default:
			others++
		}
	}
	keys := "private keys appear after C_Login"
	if ti.Flags&ck.CKF_LOGIN_REQUIRED == 0 {
		keys = "no login needed: private keys are visible without C_Login, each signature is approved in the browser"
	}
	r.note("objects before C_Login: %d user certificate(s), %d CA certificate(s), %d public key(s), %d profile(s), %d other(s); %s",
		userCerts, caCerts, pubKeys, profiles, others, keys)
	switch {
	case userCerts == 0 && listed:
		r.problem("the service lists no usable credential: programs will find nothing to sign with")
	case userCerts == 0:
		r.note("no key until the credentials can be listed")
	}
	mechs, err := p.m.GetMechanismList(id)
	if err != nil {
		r.problem("C_GetMechanismList: %v", err)
		return
	}
	names := make([]string, len(mechs))
	for i, m := range mechs {
		names[i] = mechName(m)
	}
	r.note("mechanisms: %s", strings.Join(names, " "))
}
