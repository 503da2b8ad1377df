// Package config reads rssp.toml, the RSSP's configuration file.
//
// Every relative path in the file is relative to the file's directory, so a
// setup written by `rssp init --dir D` can be moved as a whole. Unknown keys
// are an error. Secrets are never in the file itself: the KEK, the PKCS#11
// PIN and the TLS key are files (or, for the KEK, an environment variable).
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Duration is a time.Duration written as "30s" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the whole file. Zero values take the defaults of Default.
type Config struct {
	// Listen is the TCP address to serve on (default 127.0.0.1:8443).
	Listen string `toml:"listen"`
	// PublicURL is the base URL clients use (default https://LISTEN); the
	// OAuth2 base and links are derived from it.
	PublicURL string `toml:"public_url"`
	// Name, Description, Region, Lang and Logo are shown by info.
	Name        string `toml:"name"`
	Description string `toml:"description"`
	Region      string `toml:"region"`
	Lang        string `toml:"lang"`
	Logo        string `toml:"logo"`

	TLS   TLS   `toml:"tls"`
	Store Store `toml:"store"`
	// Database is the old name of [store], still read. After Load (and
	// Default) it is a copy of Store; programs read Store.
	//
	// Deprecated: use Store.
	Database Store    `toml:"database"`
	Keystore Keystore `toml:"keystore"`
	CA       CA       `toml:"ca"`
	Security Security `toml:"security"`
	Server   Server   `toml:"server"`
	Log      Log      `toml:"log"`
	OOB      OOB      `toml:"oob"`
	Metrics  Metrics  `toml:"metrics"`
	FIDO     FIDO     `toml:"fido"`
	OAuth2   OAuth2   `toml:"oauth2"`

	dir string // directory of the file, for relative paths
}

// TLS names the server certificate and key (PEM files).
type TLS struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// Disable serves plain HTTP; refused unless Listen is a loopback address.
	Disable bool `toml:"disable"`
}

// Store selects the state store: the embedded SQLite file (one node) or
// a PostgreSQL database (one or several nodes sharing it).
type Store struct {
	Driver string `toml:"driver"` // "sqlite" (default) or "postgres"
	Path   string `toml:"path"`   // sqlite: the file (default rssp.db)
	// DSN is the PostgreSQL connection string (postgres), URL or
	// key=value form, without the password: the password comes from
	// PasswordFile or libpq's environment (PGPASSWORD, PGPASSFILE).
	DSN string `toml:"dsn"`
	// PasswordFile holds the PostgreSQL password (one line, mode 0600).
	PasswordFile string `toml:"password_file"`
	// MaxConns bounds the PostgreSQL connection pool of this node; 0: the
	// larger of 4 and the number of CPUs.
	MaxConns int `toml:"max_conns"`
	// Synchronous is the SQLite file's durability: "full" (default: every
	// commit is on disk before the write returns) or "normal" (a commit
	// survives a crash of the process, but the last ones may be lost on a
	// power cut or an OS crash). PostgreSQL has its own knob
	// (synchronous_commit), so postgres refuses it.
	Synchronous string `toml:"synchronous"`
}

// Database is the old name of Store.
//
// Deprecated: use Store.
type Database = Store

// Keystore selects where credential keys live.
type Keystore struct {
	Backend string `toml:"backend"` // "soft" (default) or "pkcs11"
	// KEKFile holds the key-encryption key (base64, mode 0600). KEKEnv, if
	// set and present in the environment, takes precedence.
	KEKFile string `toml:"kek_file"`
	KEKEnv  string `toml:"kek_env"`
	PKCS11  PKCS11 `toml:"pkcs11"`
}

// PKCS11 configures the PKCS#11 backend.
type PKCS11 struct {
	Module   string `toml:"module"`
	Token    string `toml:"token"`
	PINFile  string `toml:"pin_file"`
	PoolSize int    `toml:"pool_size"` // 0: sized from the token and the cores
}

// CA locates the built-in CA and TSA files.
type CA struct {
	Dir string `toml:"dir"` // default: the config file's directory
	// CertValidity is the validity of credential certificates (default 2 years).
	CertValidity Duration `toml:"cert_validity"`
	// Organization and Country go into credential certificate subjects.
	Organization string `toml:"organization"`
	Country      string `toml:"country"`
}

// Security holds limits and lifetimes.
type Security struct {
	PINRetries      int      `toml:"pin_retries"`       // default 5
	AccessTokenTTL  Duration `toml:"access_token_ttl"`  // default 1h
	RefreshTokenTTL Duration `toml:"refresh_token_ttl"` // default 720h
	SADTTL          Duration `toml:"sad_ttl"`           // default 5m
	MaxBodyBytes    int64    `toml:"max_body_bytes"`    // default 1 MiB
	MaxHashes       int      `toml:"max_hashes"`        // per call, default 100
	MaxMultisign    int      `toml:"max_multisign"`     // default 1000
	// Argon2 cost of password and PIN hashes.
	Argon2Time   uint32 `toml:"argon2_time"`
	Argon2Memory uint32 `toml:"argon2_memory_kib"`
	// PasswordHashSlots bounds the password, client-secret and PIN checks
	// running at once (each takes argon2_memory_kib); 0: as many as fit in
	// 64 MiB, at least 2. A check waits up to PasswordHashWait (default 2s)
	// for a slot, then the request is answered 503 with Retry-After.
	PasswordHashSlots int      `toml:"password_hash_slots"`
	PasswordHashWait  Duration `toml:"password_hash_wait"`
	// Throttling of wrong passwords and client secrets, per account and
	// per client address: Burst failures, then one per Every (429 with
	// Retry-After meanwhile). Zero: 10 per account then one every 6s, 30
	// per address then one every 2s; a negative burst turns one off.
	ThrottleAccountBurst int      `toml:"throttle_account_burst"`
	ThrottleAccountEvery Duration `toml:"throttle_account_every"`
	ThrottleAddressBurst int      `toml:"throttle_address_burst"`
	ThrottleAddressEvery Duration `toml:"throttle_address_every"`
}

// Server holds HTTP timeouts.
type Server struct {
	ReadTimeout     Duration `toml:"read_timeout"`     // default 15s
	WriteTimeout    Duration `toml:"write_timeout"`    // default 60s
	IdleTimeout     Duration `toml:"idle_timeout"`     // default 120s
	ShutdownTimeout Duration `toml:"shutdown_timeout"` // default 10s
	// DrainDelay is how long a stopping server keeps serving with
	// /readyz answering 503 (and keep-alive off), so that a load balancer
	// takes it out before it stops accepting connections; then up to
	// ShutdownTimeout for the requests under way. Default 0 (one node,
	// no balancer).
	DrainDelay Duration `toml:"drain_delay"`
	// TrustedProxies are the load balancers and reverse proxies (CIDR
	// prefixes or single addresses) whose X-Forwarded-For the server
	// believes: when the direct peer is one of them, the client's address
	// is the rightmost X-Forwarded-For address that is not. Empty
	// (default): the header is ignored, the client is the TCP peer.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// TrustedPrefixes parses TrustedProxies (validate has checked them).
func (s Server) TrustedPrefixes() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, v := range s.TrustedProxies {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("server.trusted_proxies: %q is neither a CIDR prefix nor an address", v)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("server.trusted_proxies: %q: write an IPv4 prefix as such", v)
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// Metrics configures the Prometheus metrics listener: plain HTTP, GET
// /metrics only, separate from the service's listener.
type Metrics struct {
	// Listen is its TCP address; empty (default): no metrics listener.
	Listen string `toml:"listen"`
	// AllowRemote allows a Listen address that is not loopback (the
	// figures say how busy the service is; expose them on purpose).
	AllowRemote bool `toml:"allow_remote"`
}

// FIDO configures FIDO2/WebAuthn security keys (docs/fido2.md).
type FIDO struct {
	// RPID is the WebAuthn relying party ID that keys are bound to: the
	// host name of public_url (default) or a registrable suffix of it.
	// When public_url's host is an IP address and RPID is empty, security
	// keys are unavailable.
	RPID string `toml:"rp_id"`
	// RequireForSCAL2 makes every SCAL 2 credential need its owner's
	// security key on the consent page, as if enrolled with --auth fido
	// (default false).
	RequireForSCAL2 bool `toml:"require_for_scal2"`
}

// OOB configures the out-of-band channel (PasswordOOB approvals, online
// OTPs). The shipped notifier writes each message into SpoolDir (and, with
// LogLinks, approval links to the log): the stand-in for the user's phone.
type OOB struct {
	SpoolDir string `toml:"spool_dir"` // default "spool"
	// LogLinks also writes approval links to the log (demos only: a link
	// approves whoever opens it). Default false.
	LogLinks bool `toml:"log_links"`
}

// Log configures the server log.
type Log struct {
	Level  string `toml:"level"`  // debug, info (default), warn, error
	Format string `toml:"format"` // text (default) or json
}

// Default returns a config with every default filled in.
func Default() Config {
	var c Config
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defD := func(d *Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	def(&c.Listen, "127.0.0.1:8443")
	def(&c.Name, "csctoken RSSP")
	def(&c.Description, "csctoken remote signing service")
	def(&c.Region, "EU")
	def(&c.Lang, "en-US")
	def(&c.TLS.Cert, "tls-cert.pem")
	def(&c.TLS.Key, "tls-key.pem")
	if c.Store == (Store{}) {
		c.Store = c.Database // the old [database] section
	}
	def(&c.Store.Driver, "sqlite")
	if c.Store.Driver == "sqlite" {
		def(&c.Store.Path, "rssp.db")
		def(&c.Store.Synchronous, "full")
	}
	c.Database = c.Store
	def(&c.Keystore.Backend, "soft")
	def(&c.Keystore.KEKFile, "kek")
	def(&c.Keystore.KEKEnv, "RSSP_KEK")
	def(&c.CA.Dir, ".")
	def(&c.CA.Organization, c.Name)
	defD(&c.CA.CertValidity, 2*365*24*time.Hour)
	if c.Security.PINRetries == 0 {
		c.Security.PINRetries = 5
	}
	defD(&c.Security.AccessTokenTTL, time.Hour)
	defD(&c.Security.RefreshTokenTTL, 30*24*time.Hour)
	defD(&c.Security.SADTTL, 5*time.Minute)
	if c.Security.MaxBodyBytes == 0 {
		c.Security.MaxBodyBytes = 1 << 20
	}
	if c.Security.MaxHashes == 0 {
		c.Security.MaxHashes = 100
	}
	if c.Security.MaxMultisign == 0 {
		c.Security.MaxMultisign = 1000
	}
	if c.Security.Argon2Time == 0 {
		c.Security.Argon2Time = 2
	}
	if c.Security.Argon2Memory == 0 {
		c.Security.Argon2Memory = 19 * 1024
	}
	defD(&c.Server.ReadTimeout, 15*time.Second)
	defD(&c.Server.WriteTimeout, 60*time.Second)
	defD(&c.Server.IdleTimeout, 120*time.Second)
	defD(&c.Server.ShutdownTimeout, 10*time.Second)
	def(&c.OOB.SpoolDir, "spool")
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
	def(&c.PublicURL, "https://"+c.Listen)
	if c.TLS.Disable && strings.HasPrefix(c.PublicURL, "https://") {
		c.PublicURL = "http://" + strings.TrimPrefix(c.PublicURL, "https://")
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.oauth2Defaults()
}

// Load reads and validates the file at path.
func Load(path string) (Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	if md.IsDefined("store") && md.IsDefined("database") && c.Store != c.Database {
		return Config{}, fmt.Errorf("config %s: both [store] and its old name [database]: keep [store] only", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Config{}, err
	}
	c.dir = filepath.Dir(abs)
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *Config) validate() error {
	var errs []error
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	if c.TLS.Disable {
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			errs = append(errs, errors.New("tls.disable is only allowed on a loopback address"))
		}
	}
	if c.Server.DrainDelay.Duration < 0 {
		errs = append(errs, errors.New("server.drain_delay must not be negative"))
	}
	if _, err := c.Server.TrustedPrefixes(); err != nil {
		errs = append(errs, err)
	}
	if c.Metrics.Listen != "" {
		mhost, _, err := net.SplitHostPort(c.Metrics.Listen)
		ip := net.ParseIP(mhost)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("metrics.listen: %w", err))
		case !c.Metrics.AllowRemote && mhost != "localhost" && (ip == nil || !ip.IsLoopback()):
			errs = append(errs, fmt.Errorf("metrics.listen %q is not a loopback address; set metrics.allow_remote = true to expose the metrics", c.Metrics.Listen))
		}
	}
	switch c.Store.Driver {
	case "sqlite":
		if c.Store.DSN != "" || c.Store.PasswordFile != "" || c.Store.MaxConns != 0 {
			errs = append(errs, errors.New("store: dsn, password_file and max_conns are for driver \"postgres\""))
		}
		if c.Store.Synchronous != "full" && c.Store.Synchronous != "normal" {
			errs = append(errs, fmt.Errorf("store.synchronous %q: want \"full\" (the default) or \"normal\"", c.Store.Synchronous))
		}
	case "postgres":
		if c.Store.DSN == "" {
			errs = append(errs, errors.New("store.driver \"postgres\" needs store.dsn"))
		} else if dsnHasPassword(c.Store.DSN) {
			errs = append(errs, errors.New("store.dsn holds a password: put it in store.password_file (or PGPASSWORD) instead"))
		}
		if c.Store.Path != "" {
			errs = append(errs, errors.New("store.path is for driver \"sqlite\""))
		}
		if c.Store.MaxConns < 0 {
			errs = append(errs, errors.New("store.max_conns must not be negative"))
		}
		if c.Store.Synchronous != "" {
			errs = append(errs, errors.New("store.synchronous is for driver \"sqlite\": a PostgreSQL server's durability is its own synchronous_commit setting"))
		}
	default:
		errs = append(errs, fmt.Errorf("store.driver %q: want \"sqlite\" or \"postgres\"", c.Store.Driver))
	}
	switch c.Keystore.Backend {
	case "soft":
	case "pkcs11":
		if c.Keystore.PKCS11.Module == "" || c.Keystore.PKCS11.Token == "" || c.Keystore.PKCS11.PINFile == "" {
			errs = append(errs, errors.New("keystore.pkcs11 needs module, token and pin_file"))
		}
	default:
		errs = append(errs, fmt.Errorf("keystore.backend %q: want \"soft\" or \"pkcs11\"", c.Keystore.Backend))
	}
	if c.Security.PINRetries < 1 || c.Security.MaxHashes < 1 || c.Security.MaxBodyBytes < 1024 || c.Security.MaxMultisign < 1 {
		errs = append(errs, errors.New("security: pin_retries, max_hashes, max_multisign must be ≥ 1 and max_body_bytes ≥ 1024"))
	}
	if err := c.validateOAuth2(); err != nil {
		errs = append(errs, err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q", c.Log.Level))
	}
	return errors.Join(errs...)
}

// dsnHasPassword reports whether a libpq connection string (URL or
// key=value) carries a password.
func dsnHasPassword(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		_, has := u.User.Password()
		return has || u.Query().Has("password")
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "password" {
			return true
		}
	}
	return strings.Contains(dsn, "password ")
}

// Path resolves p relative to the config file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Dir is the directory of the config file.
func (c *Config) Dir() string { return c.dir }

// SetDir sets the base directory for relative paths (for configs built in code).
func (c *Config) SetDir(d string) { c.dir = d }

// Write writes c as TOML to path (mode 0600), refusing to overwrite.
func Write(path string, c Config) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := toml.NewEncoder(f).Encode(c); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
