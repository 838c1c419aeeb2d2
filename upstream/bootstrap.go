package upstream

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

// Bootstrap lists plain-DNS resolvers used only to look up the upstreams'
// host names, for a host whose own resolver is dotproxy: there the system
// resolver would ask dotproxy to find its own upstreams, and wait for itself
// until the connect timeout. Its Resolver and Name fill Config.Resolver and
// Config.ResolverName. The empty list means the system resolver.
type Bootstrap []netip.AddrPort

// UnmarshalText implements [encoding.TextUnmarshaler]: a comma-separated
// list of ip or ip:port, [v6]:port, port 53 if omitted; blanks between
// commas are skipped. A host name is refused, since finding it would need
// the resolver that Bootstrap replaces.
func (b *Bootstrap) UnmarshalText(text []byte) error {
	*b = nil
	for part := range strings.SplitSeq(string(text), ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		ap, err := parseBootstrapServer(part)
		if err != nil {
			return fmt.Errorf("%q: %w", part, err)
		}
		*b = append(*b, ap)
	}
	return nil
}

var errBootstrapNotIP = errors.New("not an IP address, ip:port or [ipv6]:port (a host name would need a resolver to find it)")

// parseBootstrapServer reads one server of the list.
func parseBootstrapServer(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, errBootstrapNotIP
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, errBootstrapNotIP
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return netip.AddrPort{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(n)), nil
}

// Resolver returns a resolver that sends every lookup to the listed
// servers, in turn (a retry goes to the next one), over the transport the
// Go resolver chose (UDP, then TCP for a truncated answer). It still reads
// /etc/hosts first and /etc/resolv.conf's options (timeout, attempts,
// search). Nil, the system resolver, when the list is empty. The servers
// are copied: changing b afterwards changes nothing.
func (b Bootstrap) Resolver() *net.Resolver {
	if len(b) == 0 {
		return nil
	}
	servers := append([]netip.AddrPort(nil), b...)
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

// Name names the servers in errors, as a Pool reports a failed lookup:
// "bootstrap 192.0.2.53:53, 192.0.2.54:53". Empty when the list is, so that
// the system resolver's errors name its own server.
func (b Bootstrap) Name() string {
	if len(b) == 0 {
		return ""
	}
	parts := make([]string, len(b))
	for i, s := range b {
		parts[i] = s.String()
	}
	return "bootstrap " + strings.Join(parts, ", ")
}
