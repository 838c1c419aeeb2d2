package ratelimit

import (
	"encoding/binary"
	"net/netip"
)

// key is a client prefix: an address with its host bits cleared, as the 16
// bytes of IPv6 (IPv4 as IPv4-mapped), in two words.
type key struct{ hi, lo uint64 }

// keyOf returns the prefix that addr is counted in. addr must be unmapped:
// an IPv6 address is then never IPv4-mapped, so that no IPv6 prefix shares
// a key with an IPv4 one.
func (l *Limiter) keyOf(addr netip.Addr) key {
	b := addr.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	if addr.Is4() {
		return key{hi, lo & l.v4mask}
	}
	return key{hi & l.v6hi, lo & l.v6lo}
}
