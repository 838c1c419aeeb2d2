package upstream

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is the DNS-over-TLS port (RFC 7858 §3.1).
const DefaultPort = 853

// Spec is one upstream as an operator writes it: host:port[#tls-name].
type Spec struct {
	// Addr is the host:port to connect to.
	Addr string
	// ServerName is the name the certificate is verified for.
	ServerName string
}

// String returns the spec in the form ParseSpec reads.
func (s Spec) String() string {
	host, _, _ := net.SplitHostPort(s.Addr)
	if s.ServerName == host {
		return s.Addr
	}
	return s.Addr + "#" + s.ServerName
}

// ParseSpec reads "host[:port][#tls-name]". The port defaults to 853; an IPv6
// address is written in brackets when it has a port. Without "#tls-name" the
// certificate must be valid for the host itself: an IP address against the
// certificate's IP SANs, a host name against its DNS names.
func ParseSpec(s string) (Spec, error) {
	addr, name, hasName := strings.Cut(strings.TrimSpace(s), "#")
	if addr == "" {
		return Spec{}, errors.New("empty upstream")
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		return Spec{}, err
	}
	if hasName {
		if err := checkName(name); err != nil {
			return Spec{}, fmt.Errorf("tls name %q: %w", name, err)
		}
	} else {
		name = host
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if err := checkName(host); err != nil {
			return Spec{}, fmt.Errorf("host %q: %w", host, err)
		}
	}
	joined := net.JoinHostPort(host, strconv.Itoa(port))
	if h, _, err := net.SplitHostPort(joined); err != nil || h != host {
		// An IPv6 zone may hold any byte, ']' included, which no
		// host:port can carry.
		return Spec{}, fmt.Errorf("host %q cannot be written as host:port", host)
	}
	return Spec{Addr: joined, ServerName: name}, nil
}

func splitHostPort(addr string) (string, int, error) {
	bare := addr
	if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") {
		bare = addr[1 : len(addr)-1]
	}
	if ip, err := netip.ParseAddr(bare); err == nil {
		return ip.String(), DefaultPort, nil // an address without a port, IPv6 included
	}
	if !strings.Contains(addr, ":") {
		return addr, DefaultPort, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	}
	return host, port, nil
}

// checkName accepts a DNS host name: dot-separated labels of letters, digits,
// '-' and '_', at most 253 characters.
func checkName(name string) error {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return errors.New("not a host name")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("not a host name")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q is not allowed in a host name", c)
			}
		}
	}
	return nil
}
