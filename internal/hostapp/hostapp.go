// Package hostapp recognises the program that loaded the PKCS#11 module,
// for what the module must know of it: whether its own networking waits
// on C_Sign (so that a consent page must not open in it, nor C_Sign wait
// for a person), and how long it waits for a TLS handshake.
package hostapp

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Kind is a family of host programs.
type Kind int

const (
	// Other: any program not listed below (LibreOffice, Java, OpenSSL,
	// pkcs11-tool, the csctoken CLI...).
	Other Kind = iota
	// Firefox and the browsers built on it. NSS signs a TLS client
	// authentication on Firefox's single socket thread, the thread all its
	// connections use: while C_Sign waits, no page of that Firefox loads,
	// the consent page included, and quitting waits for it.
	Firefox
	// Thunderbird and its forks: NSS too, but no web browser for a
	// consent page.
	Thunderbird
	// Chromium and the browsers built on it: NSS on Linux, signing off
	// the network thread.
	Chromium
)

func (k Kind) String() string {
	switch k {
	case Firefox:
		return "Firefox"
	case Thunderbird:
		return "Thunderbird"
	case Chromium:
		return "Chromium"
	}
	return "other"
}

// Host is the program the module runs in.
type Host struct {
	Kind Kind
	// Exe is the executable's path (symlinks resolved when possible).
	Exe string
	// Name is its base name.
	Name string
}

// FirefoxHandshakeTimeout is Firefox's network.http.tls-handshake-timeout
// (30 s by default): the whole TLS handshake, the user's time on the
// certificate dialog, the PIN prompt and the consent page included.
const FirefoxHandshakeTimeout = 30 * time.Second

// names maps executable base names to families.
var names = map[string]Kind{
	"firefox": Firefox, "firefox-esr": Firefox, "firefox-bin": Firefox, "firefox-devedition": Firefox,
	"firefox-nightly": Firefox, "firefox-beta": Firefox, "librewolf": Firefox, "waterfox": Firefox,
	"floorp": Firefox, "icecat": Firefox, "iceweasel": Firefox, "zen": Firefox, "zen-bin": Firefox,
	"thunderbird": Thunderbird, "thunderbird-bin": Thunderbird, "betterbird": Thunderbird, "icedove": Thunderbird,
	"chromium": Chromium, "chromium-browser": Chromium, "chrome": Chromium, "google-chrome": Chromium,
	"brave": Chromium, "msedge": Chromium, "vivaldi-bin": Chromium, "opera": Chromium,
}

// Classify names the family of the executable at exe.
func Classify(exe string) Host {
	name := filepath.Base(exe)
	base := strings.TrimSuffix(strings.ToLower(name), ".exe")
	return Host{Kind: names[base], Exe: exe, Name: name}
}

// Current is the program this process runs: os.Executable
// (/proc/self/exe) with symlinks resolved.
func Current() Host {
	exe, err := os.Executable()
	if err != nil {
		return Host{}
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return Classify(exe)
}

// SignWait is how long C_Sign may wait for a person (a consent page)
// before it answers, the consent going on: zero means as long as the
// consent takes (the module's interactive timeout). In Firefox a waiting
// C_Sign freezes every connection and delays quitting, so it answers
// within 2 s; what the user approves later is kept for the retry.
func (h Host) SignWait() time.Duration {
	if h.Kind == Firefox {
		return 2 * time.Second
	}
	return 0
}

// HandshakeLimit is how long the host waits for a TLS handshake in which
// the module signs (zero: no known limit). A signature that takes longer
// is made in vain: the host has given up the connection.
func (h Host) HandshakeLimit() time.Duration {
	if h.Kind == Firefox {
		return FirefoxHandshakeTimeout
	}
	return 0
}

// OwnBrowser reports whether a URL opened in the user's default browser
// may land in this very process (a tab of the host), whose networking a
// waiting C_Sign blocks: a consent page must then open in a browser
// process of its own.
func (h Host) OwnBrowser() bool { return h.Kind == Firefox }
