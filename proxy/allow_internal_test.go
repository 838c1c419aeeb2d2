package proxy

import (
	"net/netip"
	"testing"
)

// The access list matches a client by its address alone: an IPv4 client
// seen through an IPv6 socket, and a link-local client with its
// interface's zone, as the kernel reports them, are inside the networks
// that hold them.
func TestAllowedIgnoresMappingAndZone(t *testing.T) {
	s := &Server{cfg: Config{Allow: []netip.Prefix{
		netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fe80::/10"),
	}}}
	for addr, want := range map[string]bool{
		"192.168.1.2":        true,
		"::ffff:192.168.1.2": true,
		"fe80::1":            true,
		"fe80::1%eth0":       true,
		"fe80::1%2":          true,
		"10.0.0.1":           false,
		"2001:db8::1%eth0":   false,
	} {
		if got := s.allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("allowed(%s) = %v, want %v", addr, got, want)
		}
	}
}
