package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
)

// bootstrapList is DOTPROXY_BOOTSTRAP: plain-DNS resolvers used only to
// resolve the upstreams' host names, for a host whose own resolver is
// dotproxy (where the system resolver would ask dotproxy to find its own
// upstreams, and wait for itself until the connect timeout).
type bootstrapList []netip.AddrPort

// Decode implements envconfig.Decoder: ip or ip:port, [v6]:port; port 53
// if omitted. A host name is refused, since finding it would need the
// resolver this setting replaces.
func (l *bootstrapList) Decode(s string) error {
	*l = nil
	for _, part := range splitList(s) {
		ap, err := parseBootstrap(part)
		if err != nil {
			return fmt.Errorf("%q: %w", part, err)
		}
		*l = append(*l, ap)
	}
	return nil
}

var errNotIP = errors.New("not an IP address, ip:port or [ipv6]:port (a host name would need a resolver to find it)")

func parseBootstrap(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, errNotIP
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, errNotIP
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return netip.AddrPort{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(n)), nil
}

// resolver returns a resolver that sends every lookup to the listed
// servers, in turn (a retry goes to the next one), over the transport the
// Go resolver chose (UDP, then TCP for a truncated answer). It still reads
// /etc/hosts first and /etc/resolv.conf's options (timeout, attempts,
// search). Nil, the system resolver, when the list is empty.
func (l bootstrapList) resolver() *net.Resolver {
	if len(l) == 0 {
		return nil
	}
	servers := append([]netip.AddrPort(nil), l...)
	var next atomic.Uint32
	var d net.Dialer
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			s := servers[int(next.Add(1)-1)%len(servers)]
			return d.DialContext(ctx, network, s.String())
		},
	}
}

// name names the servers in errors, as the upstream pools report a failed
// lookup: "bootstrap 192.0.2.53:53, 192.0.2.54:53". Empty when the list is,
// so that the system resolver's errors name its own server.
func (l bootstrapList) name() string {
	if len(l) == 0 {
		return ""
	}
	parts := make([]string, len(l))
	for i, s := range l {
		parts[i] = s.String()
	}
	return "bootstrap " + strings.Join(parts, ", ")
}
