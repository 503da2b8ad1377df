// Package app assembles a running RSSP from its configuration: the store,
// the key backends, the CA and TSA, the service and the HTTP server. Both
// `rssp serve` and `rssp admin` and the end-to-end tests go through Open.
package app

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/keystore/p11"
	"github.com/csctoken/csctoken/rssp/keystore/soft"
	"github.com/csctoken/csctoken/rssp/metrics"
	"github.com/csctoken/csctoken/rssp/notify"
	"github.com/csctoken/csctoken/rssp/oauth"
	"github.com/csctoken/csctoken/rssp/sealer"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/server"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/postgres"
	"github.com/csctoken/csctoken/rssp/store/sqlite"
	"github.com/csctoken/csctoken/rssp/tsa"
)

// App is an assembled RSSP.
type App struct {
	Config  config.Config
	Service *service.Service
	Handler http.Handler
	// OAuth is the OAuth2 authorization server mounted in Handler.
	OAuth *oauth.Server
	Log   *slog.Logger
	// Metrics are the figures served on the metrics listener
	// ([metrics] listen); they are counted even when it is off.
	Metrics *metrics.Metrics

	store     store.Full
	sqlite    *sqlite.DB       // the store, when it is SQLite (Serve releases stale factor leases)
	keys      keystore.Backend // where new keys go: the one readiness checks
	draining  atomic.Bool      // set when Serve begins to stop: /readyz fails
	metricsLn net.Listener     // opened by Listen when [metrics] listen is set
	backends  map[string]keystore.Backend
	certs     *certFiles // the TLS certificate, reloadable (ReloadTLS)
	closers   []func() error
	closeOnce sync.Once
}

// issuer adapts *ca.CA to service.Issuer.
type issuer struct {
	ca  *ca.CA
	org string
	c   string
}

func (i issuer) Issue(user, credID string, pub crypto.PublicKey, validity time.Duration) ([]byte, error) {
	return i.ca.IssueCredential(ca.CredentialSubject{Name: user, Organization: i.org, Country: i.c, CredentialID: credID}, pub, validity)
}

func (i issuer) Chain() [][]byte { return i.ca.Chain() }

// NewLogger builds the server's slog logger from the config.
func NewLogger(c config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// OpenStore opens the store that c's [store] names: the SQLite file, or
// the PostgreSQL database (migrated to this program's schema in both
// cases). Its errors never hold the PostgreSQL password.
func OpenStore(ctx context.Context, c config.Config) (store.Full, error) {
	sc := c.Store
	switch sc.Driver {
	case "postgres":
		pc := postgres.Config{DSN: sc.DSN, MaxConns: int32(min(sc.MaxConns, math.MaxInt32))}
		if sc.PasswordFile != "" {
			b, err := os.ReadFile(c.Path(sc.PasswordFile))
			if err != nil {
				return nil, fmt.Errorf("store.password_file: %w", err)
			}
			pw, _, _ := strings.Cut(string(b), "\n")
			pc.Password = strings.TrimRight(pw, "\r")
			if pc.Password == "" {
				return nil, fmt.Errorf("store.password_file %s: empty", c.Path(sc.PasswordFile))
			}
		}
		db, err := postgres.Open(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return db, nil
	case "sqlite", "":
		db, err := sqlite.OpenOptions(ctx, c.Path(sc.Path), sqlite.Options{Synchronous: sc.Synchronous})
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		return db, nil
	}
	return nil, fmt.Errorf("store.driver %q: want \"sqlite\" or \"postgres\"", sc.Driver)
}

// StoreName describes c's store for the log: the driver and the SQLite
// file or the PostgreSQL DSN without its password.
func StoreName(c config.Config) string {
	if c.Store.Driver == "postgres" {
		return "postgres:" + postgres.RedactDSN(c.Store.DSN)
	}
	return "sqlite:" + c.Path(c.Store.Path)
}

// Open assembles the RSSP described by c. Close releases everything.
func Open(ctx context.Context, c config.Config, log *slog.Logger) (_ *App, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &App{Config: c, Log: log, Metrics: metrics.New()}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	kek, err := loadKEK(c)
	if err != nil {
		return nil, err
	}
	db, err := OpenStore(ctx, c)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, db.Close)
	a.sqlite, _ = db.(*sqlite.DB)
	if a.sqlite != nil && c.Store.Synchronous == "normal" {
		log.Warn("store.synchronous = \"normal\": a commit survives a crash of the rssp but not a power cut or an OS crash, which may lose the last signatures' audit rows and SAD consumptions after their signatures were sent",
			"store", StoreName(c))
	}
	// Every failure of the database is counted (rssp_store_errors_total).
	st := store.Observe(db, a.Metrics.StoreFailure)
	a.store = st

	var keys keystore.Backend
	switch c.Keystore.Backend {
	case "pkcs11":
		pin, err := os.ReadFile(c.Path(c.Keystore.PKCS11.PINFile))
		if err != nil {
			return nil, fmt.Errorf("keystore.pkcs11.pin_file: %w", err)
		}
		b, err := p11.Open(ctx, p11.Config{
			Module: c.Keystore.PKCS11.Module, TokenLabel: c.Keystore.PKCS11.Token,
			PIN: strings.TrimRight(string(pin), "\r\n"), PoolSize: c.Keystore.PKCS11.PoolSize,
			Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("keystore pkcs11: %w", err)
		}
		keys = b
	default:
		keys = soft.New(kek)
	}
	a.closers = append(a.closers, keys.Close)
	a.keys = keys
	if p, ok := keys.(keystore.Pooled); ok {
		a.Metrics.WatchPool(keys.Name(), p)
	}
	// The software keystore can always open keys sealed earlier, even when
	// new keys go to the HSM.
	var others []keystore.Backend
	if keys.Name() != "soft" {
		sb := soft.New(kek)
		others = append(others, sb)
		a.closers = append(a.closers, sb.Close)
	}

	a.backends = map[string]keystore.Backend{keys.Name(): keys}
	for _, o := range others {
		a.backends[o.Name()] = o
	}

	authority, err := ca.Load(c.Path(c.CA.Dir))
	if err != nil {
		return nil, fmt.Errorf("built-in CA: %w", err)
	}
	var ts service.Timestamper
	if t, err := tsa.Load(c.Path(c.CA.Dir)); err == nil {
		ts = t
	} else {
		log.Warn("signatures/timestamp disabled: no TSA", "err", err)
	}

	svc, err := service.New(service.Deps{
		Store: st, Keys: keys, Backends: others,
		Issuer: issuer{ca: authority, org: c.CA.Organization, c: c.CA.Country},
		TSA:    ts, Sealer: kek, Logger: log,
		Pending:  st,
		Notifier: &notify.Spool{Dir: c.Path(c.OOB.SpoolDir), Log: log, LogLinks: c.OOB.LogLinks},
		Metrics:  a.Metrics,
	}, service.Options{
		Name:            c.Name,
		PublicURL:       c.PublicURL,
		PINRetries:      c.Security.PINRetries,
		AccessTokenTTL:  c.Security.AccessTokenTTL.Duration,
		RefreshTokenTTL: c.Security.RefreshTokenTTL.Duration,
		SADTTL:          c.Security.SADTTL.Duration,
		MaxHashes:       c.Security.MaxHashes,
		MaxMultisign:    c.Security.MaxMultisign,
		CertValidity:    c.CA.CertValidity.Duration,
		Argon2:          secret.Params{Time: c.Security.Argon2Time, Memory: c.Security.Argon2Memory, Threads: 1},
		HashSlots:       c.Security.PasswordHashSlots,
		HashWait:        c.Security.PasswordHashWait.Duration,
		AccountRate:     service.Rate{Burst: c.Security.ThrottleAccountBurst, Every: c.Security.ThrottleAccountEvery.Duration},
		AddressRate:     service.Rate{Burst: c.Security.ThrottleAddressBurst, Every: c.Security.ThrottleAddressEvery.Duration},
		FIDOForSCAL2:    c.FIDO.RequireForSCAL2,
	})
	if err != nil {
		return nil, err
	}
	a.Service = svc
	oopt := oauth.Options{Issuer: c.PublicURL, ServiceName: c.Name, FIDORPID: c.FIDO.RPID}
	var mounted server.OAuthServer
	if c.OAuth2.External() {
		v, err := externalValidator(c, log)
		if err != nil {
			return nil, err
		}
		svc.SetExternal(service.External{Tokens: v, AutoCreateUsers: c.OAuth2.AutoCreateUsers, Leeway: c.OAuth2.Leeway.Duration})
		if c.OAuth2.HydraAdminURL != "" {
			hc, err := issuerClient(c)
			if err != nil {
				return nil, err
			}
			oopt.Hydra = &oauth.HydraOptions{AdminURL: c.OAuth2.HydraAdminURL, Audience: c.OAuth2.Audience, HTTPClient: hc}
		}
	}
	if a.OAuth, err = oauth.New(svc, oopt, log); err != nil {
		return nil, fmt.Errorf("OAuth2 authorization server: %w", err)
	}
	if !c.OAuth2.External() || oopt.Hydra != nil {
		mounted = a.OAuth
	}
	trusted, err := c.Server.TrustedPrefixes()
	if err != nil {
		return nil, err
	}
	a.Handler = server.New(svc, server.Options{
		Info:           server.Info{Name: c.Name, Description: c.Description, Region: c.Region, Lang: c.Lang, Logo: c.Logo},
		MaxBodyBytes:   c.Security.MaxBodyBytes,
		RequestTimeout: c.Server.WriteTimeout.Duration,
		OAuth:          mounted,
		ExternalIssuer: c.OAuth2.Issuer,
		Ready:          a.Ready,
		Metrics:        a.Metrics,
		TrustedProxies: trusted,
	}, log)
	return a, nil
}

// Ready is the readiness check behind GET /readyz: not while the server
// is stopping, and only when the database answers and the key backend for
// new keys can sign (a PKCS#11 token: a pooled session, logged in).
func (a *App) Ready(ctx context.Context) error {
	if a.draining.Load() {
		return errors.New("shutting down")
	}
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if c, ok := a.keys.(keystore.Checker); ok {
		if err := c.Check(ctx); err != nil {
			return fmt.Errorf("keystore %s: %w", a.keys.Name(), err)
		}
	}
	return nil
}

func loadKEK(c config.Config) (*sealer.KEK, error) {
	if c.Keystore.KEKEnv != "" {
		if _, ok := os.LookupEnv(c.Keystore.KEKEnv); ok {
			k, err := sealer.KEKFromEnv(c.Keystore.KEKEnv)
			if err != nil {
				return nil, fmt.Errorf("key-encryption key from $%s: %w", c.Keystore.KEKEnv, err)
			}
			return k, nil
		}
	}
	k, err := sealer.LoadKEK(c.Path(c.Keystore.KEKFile))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return k, nil
}

// Backend returns the key backend of that name (for benchmarks and tests
// that compare the server with its backend).
func (a *App) Backend(name string) keystore.Backend { return a.backends[name] }

// Close releases everything Open acquired, in reverse order.
func (a *App) Close() error {
	var errs []error
	a.closeOnce.Do(func() {
		for i := len(a.closers) - 1; i >= 0; i-- {
			if err := a.closers[i](); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// Listen opens the configured TCP listener, and the metrics listener when
// [metrics] listen is set (served by Serve, closed by Close if Serve never
// runs). TLS is added by Serve. When the configured port is 0 and the
// public URL is the default one derived from it, the public URL (the
// OAuth2 issuer) takes the port chosen.
func (a *App) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.Config.Listen)
	if err != nil {
		return nil, err
	}
	if a.Config.Metrics.Listen != "" && a.metricsLn == nil {
		mln, err := net.Listen("tcp", a.Config.Metrics.Listen)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		a.metricsLn = mln
		a.closers = append(a.closers, func() error {
			if err := mln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				return err
			}
			return nil
		})
	}
	if _, port, _ := net.SplitHostPort(a.Config.Listen); port == "0" && a.OAuth != nil &&
		strings.TrimPrefix(strings.TrimPrefix(a.Config.PublicURL, "https://"), "http://") == a.Config.Listen {
		scheme, _, _ := strings.Cut(a.Config.PublicURL, "://")
		a.Config.PublicURL = scheme + "://" + ln.Addr().String()
		if err := a.OAuth.SetIssuer(a.Config.PublicURL); err != nil {
			ln.Close()
			return nil, err
		}
		a.Service.SetPublicURL(a.Config.PublicURL)
	}
	return ln, nil
}

// tlsConfig loads the server certificate (reloadable with ReloadTLS): TLS
// 1.2 and 1.3 only, HTTP/2 offered.
func (a *App) tlsConfig() (*tls.Config, error) {
	a.certs = &certFiles{certFile: a.Config.Path(a.Config.TLS.Cert), keyFile: a.Config.Path(a.Config.TLS.Key)}
	if err := a.certs.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   server.CipherSuites,
		GetCertificate: a.certs.get,
	}, nil
}

// MetricsAddr is the metrics listener's address ("" when it is off).
func (a *App) MetricsAddr() string {
	if a.metricsLn == nil {
		return ""
	}
	return a.metricsLn.Addr().String()
}

// Serve serves on ln (with TLS unless disabled), and the metrics on their
// listener, until ctx is cancelled. Then it stops gracefully: /readyz
// answers 503 at once and, for [server] drain_delay, the server keeps
// serving (keep-alive off) so that a load balancer takes the node out;
// then it stops accepting and waits up to shutdown_timeout for the
// requests under way, logging how many it drained.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	c := a.Config
	if a.sqlite != nil {
		// One process serves a SQLite store: leases left by a killed
		// predecessor would block those credentials' checks until they
		// expire.
		n, err := a.sqlite.ReleaseAllFactorLocks(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			a.Log.Warn("released factor-check leases left by a stopped rssp", "credentials", n)
		}
	}
	var inFlight atomic.Int64
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		a.Handler.ServeHTTP(w, r)
	})
	srv := server.HTTPServer(counted, c.Server.ReadTimeout.Duration, c.Server.WriteTimeout.Duration, c.Server.IdleTimeout.Duration, a.Log)
	errc := make(chan error, 1)
	if c.TLS.Disable {
		go func() { errc <- srv.Serve(ln) }()
	} else {
		tc, err := a.tlsConfig()
		if err != nil {
			ln.Close()
			return err
		}
		srv.TLSConfig = tc
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	}
	var msrv *http.Server
	if a.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.Metrics.Handler())
		msrv = server.HTTPServer(mux, c.Server.ReadTimeout.Duration, c.Server.WriteTimeout.Duration, c.Server.IdleTimeout.Duration, a.Log)
		mln := a.metricsLn
		go func() {
			if err := msrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.Log.Error("metrics listener failed", "err", err)
			}
		}()
		defer msrv.Close()
	}
	go a.housekeeping(ctx)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.draining.Store(true)
	if d := c.Server.DrainDelay.Duration; d > 0 {
		srv.SetKeepAlivesEnabled(false)
		a.Log.Info("rssp draining: /readyz answers 503", "drain_delay", d.String(), "in_flight", inFlight.Load())
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return err
		}
	}
	n := inFlight.Load()
	a.Log.Info("rssp shutting down", "in_flight", n, "timeout", c.Server.ShutdownTimeout.Duration.String())
	sctx, cancel := context.WithTimeout(context.Background(), c.Server.ShutdownTimeout.Duration)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.Log.Warn("rssp stopped before its requests ended", "cut_off", inFlight.Load(), "drained", n-inFlight.Load())
		return fmt.Errorf("shutdown: %w", err)
	}
	a.Log.Info("rssp stopped", "drained", n)
	return nil
}

// housekeeping purges expired tokens and SADs every minute.
func (a *App) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := a.Service.Purge(ctx, now); err != nil && ctx.Err() == nil {
				a.Log.Warn("purge failed", "err", err)
			}
			if err := a.OAuth.OAuth().Purge(ctx, now); err != nil && ctx.Err() == nil {
				a.Log.Warn("OAuth2 purge failed", "err", err)
			}
		}
	}
}
