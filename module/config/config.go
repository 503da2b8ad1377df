// Package config loads the csctoken module configuration: a TOML file with
// one [[service]] table per CSC remote signing service (RSSP).
//
// Lookup order (Find): $CSCTOKEN_CONFIG, then
// $XDG_CONFIG_HOME/csctoken/csctoken.toml (~/.config/csctoken/csctoken.toml
// when XDG_CONFIG_HOME is unset), then /etc/csctoken/csctoken.toml. On
// Windows: $CSCTOKEN_CONFIG, then %APPDATA%\csctoken\csctoken.toml (the
// user's), then %ProgramData%\csctoken\csctoken.toml (the machine's, where
// IT deploys it).
// No file at all is "no config": zero services, no error.
//
// Decoding is strict: unknown keys and invalid values are collected as
// Problems (file, key, message) so that `csctoken doctor` can print them all
// at once; a service with a problem is left out of Config.Services, the
// others stay usable. Example:
//
//	log = "/home/me/.cache/csctoken/module.log"
//
//	[[service]]
//	name = "Work"
//	url = "https://rssp.example.com/csc/v2"
//	auth = "oauth2"
//	client_id = "csctoken"
//	credential_auth = "pin"   # or "browser"
//	timeout = "30s"
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/csctoken/csctoken/internal/fsutil"
)

// EnvConfig names the environment variable that points at the config file.
const EnvConfig = "CSCTOKEN_CONFIG"

// Defaults for the service timeouts.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultListTimeout = 5 * time.Second
)

// Service authentication kinds (the `auth` key).
const (
	AuthBasic  = "basic"
	AuthOAuth2 = "oauth2"
)

// Credential authorization modes (the `credential_auth` key).
const (
	CredentialAuthPIN     = "pin"
	CredentialAuthBrowser = "browser"
)

// Config is the whole module configuration.
type Config struct {
	// Path is the file the config came from; empty when none was found.
	Path string
	// Log is the module log file; empty means no log (unless $CSCTOKEN_LOG).
	Log string
	// CacheDir holds the on-disk cache of public objects; empty means the
	// default, os.UserCacheDir()/csctoken.
	CacheDir string
	// Services are the valid [[service]] tables in file order; one slot each.
	Services []Service
}

// Service is one [[service]] table.
type Service struct {
	// Name is the token label: printable ASCII, 1 to 32 bytes, unique.
	Name string
	// URL is the CSC base URL ending in /csc/v2 or /csc/v1 (no trailing
	// slash after normalisation). It names the service (token serial,
	// caches, the stored service token).
	URL string
	// FailoverURLs are the base URLs of other nodes of the same service,
	// tried in order when the node of URL fails (same version as URL).
	FailoverURLs []string
	// Auth is "basic" (auth/login with Username) or "oauth2".
	Auth string
	// Username is required for basic; optional for oauth2, where it only
	// keys the on-disk cache.
	Username string
	// ClientID is the OAuth2 client ID, required for oauth2.
	ClientID string
	// CredentialAuth is "pin" (default) or "browser".
	CredentialAuth string
	// CAFile is an extra PEM trust root; empty means the system roots.
	CAFile string
	// Timeout bounds authorize and signHash calls (default 30s).
	Timeout time.Duration
	// ListTimeout bounds credential listings (default 5s).
	ListTimeout time.Duration
	// AlwaysAuthenticate sets CKA_ALWAYS_AUTHENTICATE on private keys
	// (default false): each signature then needs C_Login(CKU_CONTEXT_SPECIFIC).
	AlwaysAuthenticate bool
	// VerifyEverySignature checks every signature from the service against
	// the certificate's public key before C_Sign returns it (default false:
	// the first signature of each key, mechanism and hash is checked, which
	// catches a service signing with another key or scheme, at no cost to
	// later signatures; ECDSA verification costs more than the module's
	// own work).
	VerifyEverySignature bool
}

// Version returns "v2" or "v1" from the URL's last path element.
func (s Service) Version() string {
	if strings.HasSuffix(s.URL, "/csc/v1") {
		return "v1"
	}
	return "v2"
}

// Problem is one configuration error.
type Problem struct {
	File string // the config file
	Key  string // e.g. "service[1].url"; empty for file-level problems
	Msg  string
}

func (p Problem) String() string {
	switch {
	case p.Key == "":
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	default:
		return fmt.Sprintf("%s: %s: %s", p.File, p.Key, p.Msg)
	}
}

// Errors lists every problem found in one file.
type Errors []Problem

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.String()
	}
	return strings.Join(lines, "; ")
}

// rawConfig mirrors the TOML file.
type rawConfig struct {
	Log      string       `toml:"log"`
	CacheDir string       `toml:"cache_dir"`
	Service  []rawService `toml:"service"`
}

type rawService struct {
	Name               string   `toml:"name"`
	URL                string   `toml:"url"`
	FailoverURLs       []string `toml:"failover_urls"`
	Auth               string   `toml:"auth"`
	Username           string   `toml:"username"`
	ClientID           string   `toml:"client_id"`
	CredentialAuth     string   `toml:"credential_auth"`
	CAFile             string   `toml:"ca_file"`
	Timeout            string   `toml:"timeout"`
	ListTimeout        string   `toml:"list_timeout"`
	AlwaysAuthenticate bool     `toml:"always_authenticate"`
	VerifyEverySig     bool     `toml:"verify_every_signature"`
}

// Find returns the path of the config file to use, following the lookup
// order. It returns "" and no error when there is none. $CSCTOKEN_CONFIG
// pointing at a missing file is an error.
func Find() (string, error) {
	if p := os.Getenv(EnvConfig); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", EnvConfig, err)
		}
		return p, nil
	}
	for _, c := range Candidates() {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("config %s: %w", c, err)
		}
	}
	return "", nil
}

// LoadDefault finds and loads the config. With no file it returns an empty
// Config and no error. On problems it returns the usable part of the config
// together with an Errors value (or another error); the Config is never nil.
func LoadDefault() (*Config, error) {
	p, err := Find()
	if err != nil {
		return &Config{}, err
	}
	if p == "" {
		return &Config{}, nil
	}
	return Load(p)
}

// MaxFileSize bounds the config file and the CA file: both are read
// whole, by the host program's thread.
const MaxFileSize = 1 << 20

// Load reads and parses the file at path. A missing file is an empty
// Config without error. Other failures are as for LoadDefault.
func Load(path string) (*Config, error) {
	data, err := fsutil.ReadFile(path, MaxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return &Config{Path: path}, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse parses config text; path names it in problems and anchors relative
// paths (ca_file, log, cache_dir) at its directory.
func Parse(data []byte, path string) (*Config, error) {
	cfg := &Config{Path: path}
	var probs Errors
	add := func(key, format string, args ...any) {
		probs = append(probs, Problem{File: path, Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	var raw rawConfig
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			add("", "line %d: %s", pe.Position.Line, pe.Message)
		} else {
			add("", "%v", err)
		}
		return cfg, probs
	}

	// BurntSushi/toml reports undecoded keys of array tables without their
	// index, so unknown keys inside [[service]] tables are found on a
	// generic decoding of the same text instead.
	badService := map[int]bool{}
	for _, k := range md.Undecoded() {
		if len(k) > 0 && k[0] == "service" {
			continue
		}
		add(k.String(), "unknown key")
	}
	var generic struct {
		Service []map[string]any `toml:"service"`
	}
	if _, err := toml.Decode(string(data), &generic); err == nil {
		for i, tbl := range generic.Service {
			for _, k := range sortedKeys(tbl) {
				if !knownServiceKeys[k] {
					badService[i] = true
					add(fmt.Sprintf("service[%d].%s", i, k), "unknown key")
				}
			}
		}
	}

	dir := filepath.Dir(path)
	cfg.Log = resolvePath(raw.Log, dir)
	cfg.CacheDir = resolvePath(raw.CacheDir, dir)

	names := map[string]int{}
	for i, rs := range raw.Service {
		n := len(probs)
		s := validateService(i, rs, dir, add)
		if s.Name != "" {
			if j, dup := names[s.Name]; dup {
				add(fmt.Sprintf("service[%d].name", i), "duplicate name %q (also service[%d])", s.Name, j)
			} else {
				names[s.Name] = i
			}
		}
		if len(probs) == n && !badService[i] {
			cfg.Services = append(cfg.Services, s)
		}
	}
	if len(probs) > 0 {
		return cfg, probs
	}
	return cfg, nil
}

var knownServiceKeys = map[string]bool{
	"name": true, "url": true, "failover_urls": true, "auth": true, "username": true, "client_id": true,
	"credential_auth": true, "ca_file": true, "timeout": true, "list_timeout": true,
	"always_authenticate": true, "verify_every_signature": true,
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func validateService(i int, rs rawService, dir string, add func(key, format string, args ...any)) Service {
	key := func(k string) string { return fmt.Sprintf("service[%d].%s", i, k) }
	s := Service{
		Name:                 rs.Name,
		Auth:                 rs.Auth,
		Username:             rs.Username,
		ClientID:             rs.ClientID,
		CredentialAuth:       rs.CredentialAuth,
		CAFile:               resolvePath(rs.CAFile, dir),
		Timeout:              DefaultTimeout,
		ListTimeout:          DefaultListTimeout,
		AlwaysAuthenticate:   rs.AlwaysAuthenticate,
		VerifyEverySignature: rs.VerifyEverySig,
	}

	switch {
	case rs.Name == "":
		add(key("name"), "missing (it is the token label)")
	case len(rs.Name) > 32:
		add(key("name"), "%q is longer than the 32-byte token label", rs.Name)
	case !printableASCII(rs.Name):
		add(key("name"), "%q: only printable ASCII is allowed in a token label", rs.Name)
	}

	if u, err := normalizeURL(rs.URL); err != nil {
		add(key("url"), "%v", err)
	} else {
		s.URL = u
	}
	seen := map[string]bool{s.URL: true}
	for j, raw := range rs.FailoverURLs {
		k := fmt.Sprintf("%s[%d]", key("failover_urls"), j)
		u, err := normalizeURL(raw)
		switch {
		case err != nil:
			add(k, "%v", err)
		case s.URL != "" && path.Base(u) != path.Base(s.URL):
			add(k, "%q speaks %s, url speaks %s: the nodes of one service speak one version", raw, path.Base(u), path.Base(s.URL))
		case seen[u]:
			add(k, "%q is given twice", raw)
		default:
			seen[u] = true
			s.FailoverURLs = append(s.FailoverURLs, u)
		}
	}

	switch rs.Auth {
	case AuthBasic:
		if rs.Username == "" {
			add(key("username"), "missing (required with auth = \"basic\")")
		}
	case AuthOAuth2:
		if rs.ClientID == "" {
			add(key("client_id"), "missing (required with auth = \"oauth2\")")
		}
	case "":
		add(key("auth"), "missing (\"basic\" or \"oauth2\")")
	default:
		add(key("auth"), "%q: must be \"basic\" or \"oauth2\"", rs.Auth)
	}

	switch rs.CredentialAuth {
	case "":
		s.CredentialAuth = CredentialAuthPIN
	case CredentialAuthPIN:
	case CredentialAuthBrowser:
		if rs.ClientID == "" && rs.Auth != AuthOAuth2 {
			add(key("client_id"), "missing (required with credential_auth = \"browser\": the consent page is an OAuth2 flow)")
		}
	default:
		add(key("credential_auth"), "%q: must be \"pin\" or \"browser\"", rs.CredentialAuth)
	}

	if s.CAFile != "" {
		// A regular file of a sane size: /dev/urandom or a FIFO here would
		// hang the host program at its first connection.
		if err := fsutil.Check(s.CAFile, MaxFileSize); err != nil {
			add(key("ca_file"), "%v", err)
		}
	}

	parseDur := func(k, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			add(key(k), "%q is not a duration like \"30s\"", v)
		case d <= 0:
			add(key(k), "%q must be positive", v)
		case d > time.Hour:
			add(key(k), "%q is longer than an hour", v)
		default:
			*dst = d
		}
	}
	parseDur("timeout", rs.Timeout, &s.Timeout)
	parseDur("list_timeout", rs.ListTimeout, &s.ListTimeout)
	return s
}

// normalizeURL checks a CSC base URL and strips a trailing slash.
func normalizeURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bad URL: %w", err)
	}
	if u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%q: not an absolute URL", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("%q: credentials in the URL are not allowed", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: no query or fragment allowed", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("%q: http is allowed only for localhost; use https", raw)
		}
	default:
		return "", fmt.Errorf("%q: scheme must be https", raw)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: port %s is outside 1-65535", raw, port)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("%q: empty port", raw)
	}
	p := strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(p, "/csc/v2") && !strings.HasSuffix(p, "/csc/v1") {
		return "", fmt.Errorf("%q: path must end in /csc/v2 or /csc/v1", raw)
	}
	u.Path = p
	u.RawPath = ""
	return u.String(), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// resolvePath expands a leading "~/" and makes relative paths relative to
// dir (the config file's directory).
func resolvePath(p, dir string) string {
	if p == "" {
		return ""
	}
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	if filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}
