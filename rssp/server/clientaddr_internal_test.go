package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestClientAddr: X-Forwarded-For is believed only from a trusted proxy,
// and then only up to the rightmost address that is not a trusted proxy;
// a header sent by anyone else, or the part a client wrote itself, is
// ignored.
func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies configured: header ignored", nil, "10.0.0.5:4000", []string{"198.51.100.7"}, "10.0.0.5"},
		{"untrusted peer spoofing the header", trusted, "203.0.113.9:4000", []string{"198.51.100.7"}, "203.0.113.9"},
		{"untrusted peer claiming a proxy hop", trusted, "203.0.113.9:4000", []string{"198.51.100.7, 10.0.0.1"}, "203.0.113.9"},
		{"trusted peer, no header", trusted, "10.0.0.5:4000", nil, "10.0.0.5"},
		{"trusted peer: the client it saw", trusted, "10.0.0.5:4000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"client-written entries left of it ignored", trusted, "10.0.0.5:4000", []string{"192.0.2.66, 198.51.100.7"}, "198.51.100.7"},
		{"two trusted hops", trusted, "10.0.0.5:4000", []string{"192.0.2.66, 198.51.100.7, 10.1.2.3"}, "198.51.100.7"},
		{"hops in several header lines", trusted, "10.0.0.5:4000", []string{"192.0.2.66", "198.51.100.7", "10.1.2.3"}, "198.51.100.7"},
		{"all hops trusted: the leftmost", trusted, "10.0.0.5:4000", []string{"10.9.9.9, 10.1.2.3"}, "10.9.9.9"},
		{"garbage: the hop that appended it", trusted, "10.0.0.5:4000", []string{"198.51.100.7, not-an-ip, 10.1.2.3"}, "10.1.2.3"},
		{"garbage at once: the peer", trusted, "10.0.0.5:4000", []string{"unknown"}, "10.0.0.5"},
		{"an entry with a port", trusted, "10.0.0.5:4000", []string{"198.51.100.7:5555"}, "198.51.100.7"},
		{"IPv6 proxy and client", trusted, "[2001:db8:1::2]:443", []string{"2001:db8:2::7"}, "2001:db8:2::7"},
		{"IPv6 client with a port", trusted, "[2001:db8:1::2]:443", []string{"[2001:db8:2::7]:5555"}, "2001:db8:2::7"},
		{"IPv4-mapped peer", trusted, "[::ffff:10.0.0.5]:4000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"IPv4-mapped client", trusted, "10.0.0.5:4000", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/csc/v2/auth/login", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, tt.trusted); got != tt.want {
				t.Errorf("clientAddr = %q, want %q", got, tt.want)
			}
		})
	}
}
