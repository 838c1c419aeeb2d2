package main

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/dotproxy/dotproxy/upstream"
)

// upstreamList is DOTPROXY_UPSTREAMS.
type upstreamList []upstream.Spec

// Decode implements envconfig.Decoder.
func (l *upstreamList) Decode(s string) error {
	*l = nil
	for _, part := range splitList(s) {
		if err := checkNotPlain(part); err != nil {
			return err
		}
		spec, err := upstream.ParseSpec(part)
		if err != nil {
			return fmt.Errorf("%q: %w", part, err)
		}
		*l = append(*l, spec)
	}
	return nil
}

// checkNotPlain refuses an upstream written as plain DNS, in
// DOTPROXY_UPSTREAMS as in a route (where a corporate resolver is most
// often reached by plain DNS on port 53): dotproxy forwards over
// DNS-over-TLS only, everywhere, so that no one who meant plain DNS is
// left guessing why TLS to port 53 fails.
func checkNotPlain(part string) error {
	if scheme, _, ok := strings.Cut(part, "://"); ok {
		return fmt.Errorf("%q: no scheme (%s://): upstreams are DNS-over-TLS resolvers written host[:port][#tls-name]", part, scheme)
	}
	spec, err := upstream.ParseSpec(part)
	if err != nil {
		return err
	}
	if _, port, _ := net.SplitHostPort(spec.Addr); port == "53" {
		return fmt.Errorf("%q: port 53 is plain DNS; dotproxy forwards only over DNS-over-TLS (port %d if omitted)", part, upstream.DefaultPort)
	}
	return nil
}

// listenList is DOTPROXY_LISTEN.
type listenList []string

// Decode implements envconfig.Decoder.
func (l *listenList) Decode(s string) error {
	*l = nil
	for _, part := range splitList(s) {
		host, port, err := net.SplitHostPort(part)
		if err != nil {
			return fmt.Errorf("%q: %w", part, err)
		}
		if host != "" {
			if _, err := netip.ParseAddr(host); err != nil {
				return fmt.Errorf("%q: host must be an IP address or empty", part)
			}
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			return fmt.Errorf("%q: bad port", part)
		}
		*l = append(*l, part)
	}
	return nil
}

// prefixList is DOTPROXY_ALLOW.
type prefixList []netip.Prefix

// Decode implements envconfig.Decoder.
func (l *prefixList) Decode(s string) error {
	*l = nil
	for _, part := range splitList(s) {
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return fmt.Errorf("%q is neither a CIDR nor an address", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		*l = append(*l, p.Masked())
	}
	return nil
}

// pinList is DOTPROXY_TLS_PINS.
type pinList [][sha256.Size]byte

// Decode implements envconfig.Decoder.
func (l *pinList) Decode(s string) error {
	*l = nil
	for _, part := range splitList(s) {
		b, err := base64.StdEncoding.DecodeString(part)
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%q is not a base64 SHA-256 digest", part)
		}
		*l = append(*l, [sha256.Size]byte(b))
	}
	return nil
}

// splitList splits a comma-separated value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
