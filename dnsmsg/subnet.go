package dnsmsg

import (
	"encoding/binary"
	"errors"
	"strings"
)

// OptionClientSubnet is the EDNS Client Subnet option (RFC 7871), ECS, by
// which a client tells resolvers which network it asks from.
const OptionClientSubnet = 8

// ClientSubnet is the policy for a client's ECS option on its way upstream,
// as an operator names it: [SubnetHide] or [SubnetPass].
// [ClientSubnet.Hide] turns it into [Rewrite.HideClientSubnet].
type ClientSubnet string

// The client subnet policies.
const (
	// SubnetHide sends a client's ECS option upstream with SOURCE
	// PREFIX-LENGTH 0 and no address, its FAMILY kept: by RFC 7871 §7.1.2
	// a resolver then must not add the client's address to its own
	// queries, so the client's network stays between it and the proxy.
	SubnetHide ClientSubnet = "hide"
	// SubnetPass sends a client's ECS option upstream as the client sent it.
	SubnetPass ClientSubnet = "pass"
)

// UnmarshalText implements [encoding.TextUnmarshaler], ignoring case, so
// that a mistyped policy stops start-up rather than passing subnets on.
func (s *ClientSubnet) UnmarshalText(text []byte) error {
	switch v := ClientSubnet(strings.ToLower(string(text))); v {
	case SubnetHide, SubnetPass:
		*s = v
	default:
		return errors.New("unknown client subnet policy (allowed: hide, pass)")
	}
	return nil
}

// Hide reports whether s is [SubnetHide], for [Rewrite.HideClientSubnet].
func (s ClientSubnet) Hide() bool { return s == SubnetHide }

var (
	// ErrBadClientSubnet reports a query whose ECS option breaks RFC 7871
	// §6: under [Rewrite.HideClientSubnet] it is not sent, and a resolver
	// answers such a query FORMERR (RFC 7871 §6, §7.2.1).
	ErrBadClientSubnet = errors.New("dnsmsg: malformed client subnet option")
	// ErrClientSubnetKept reports a query whose client subnet
	// [Rewrite.HideClientSubnet] cannot take out without breaking the query:
	// it is signed (TSIG, SIG(0)), or cannot be walked safely. It is not
	// sent; RFC 7871 §7.1.1 has a resolver that will not forward a client's
	// address answer REFUSED.
	ErrClientSubnetKept = errors.New("dnsmsg: client subnet cannot be hidden in this query")
)

// MaxCleanGrowth is the most [CleanAnswer] can lengthen an answer by: the
// client's own ECS option put back (at most 24 bytes, IPv6 /128) where the
// resolver's echo of the hidden one was (at least an option header, 4
// bytes). An answer with that much spare capacity is cleaned without
// allocating.
const MaxCleanGrowth = 24 - optionHeaderLen

// hiddenLen is the length of an ECS option as SubnetHide sends it: the
// header, FAMILY, SOURCE and SCOPE PREFIX-LENGTH 0, no ADDRESS.
const hiddenLen = optionHeaderLen + 4

// subnets is what an OPT record's RDATA says about the client's subnet.
type subnets struct {
	// hide: an ECS option carries address bits (SOURCE PREFIX-LENGTH
	// above 0), and every ECS option is well formed.
	hide bool
	// bad: an ECS option breaks RFC 7871 §6, or the option list breaks off
	// with an ECS option before or at the break.
	bad bool
	// first and end bound, in the RDATA, the first ECS option: the one
	// resolvers read (others are skipped) and so the one put back in the
	// answer.
	first, end int
}

// readSubnets reads the ECS options of the OPT RDATA rd. Several ECS options
// are allowed (RFC 6891 §6.1.2 does not forbid repeating one) but each must
// be well formed: hiding replaces every one, whichever a resolver reads.
func readSubnets(rd []byte) subnets {
	var s subnets
	seen := false
	for o := 0; o < len(rd); {
		code, n, ok := nextOption(rd, o)
		if !ok {
			// The list breaks off: an ECS option in it, whole or cut,
			// cannot be rewritten with the rest kept byte for byte.
			s.bad = seen || o+2 <= len(rd) && binary.BigEndian.Uint16(rd[o:]) == OptionClientSubnet
			return s
		}
		if code == OptionClientSubnet {
			if !seen {
				s.first, s.end = o, o+n
			}
			seen = true
			source, ok := subnetSource(rd[o+optionHeaderLen : o+n])
			if !ok {
				s.bad = true
			}
			if source > 0 {
				s.hide = true
			}
		}
		o += n
	}
	if s.bad {
		s.hide = false
	}
	return s
}

// subnetSource checks the data of an ECS option sent in a query against RFC
// 7871 §6 and returns its SOURCE PREFIX-LENGTH. FAMILY must be 1 (IPv4) or
// 2 (IPv6) with a SOURCE PREFIX-LENGTH that fits it, or 0 with SOURCE
// PREFIX-LENGTH 0 (§7.1.2 once asked for FAMILY 0 when no address is sent,
// and resolvers accept it); SCOPE PREFIX-LENGTH must be 0 in queries; the
// ADDRESS must hold exactly the octets that SOURCE PREFIX-LENGTH covers,
// with every bit past it 0.
func subnetSource(data []byte) (source int, ok bool) {
	if len(data) < 4 {
		return 0, false
	}
	family := binary.BigEndian.Uint16(data)
	source, scope := int(data[2]), data[3]
	addr := data[4:]
	bits := 0
	switch family {
	case 0:
	case 1:
		bits = 32
	case 2:
		bits = 128
	default:
		return source, false
	}
	if source > bits || scope != 0 || len(addr) != (source+7)/8 {
		return source, false
	}
	if source%8 != 0 && addr[len(addr)-1]&(0xFF>>(source%8)) != 0 {
		return source, false
	}
	return source, true
}

// hideVerdict decides, for a query with the OPT RDATA rd and, in rewritable,
// whether the rewrite can move its bytes, whether the query may go upstream
// under HideClientSubnet. A query without a subnet to hide goes as it would
// without the setting.
func hideVerdict(rd []byte, rewritable bool) (subnets, error) {
	s := readSubnets(rd)
	switch {
	case s.bad:
		return s, ErrBadClientSubnet
	case s.hide && !rewritable:
		return s, ErrClientSubnetKept
	}
	return s, nil
}

// unwalkedVerdict is hideVerdict for a query that scan could not walk,
// which is sent, if at all, as it came: it must carry no subnet. Its OPT
// records, however many, are found by the records' lengths alone, as any
// resolver reads them (a compression pointer ends a name unread); records
// past one that does not parse can be read by no one.
func unwalkedVerdict(msg []byte) error {
	if len(msg) < HeaderLen {
		return nil
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rr := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:]))
	ar := int(binary.BigEndian.Uint16(msg[10:]))
	off := HeaderLen
	var ok bool
	for range qd {
		if off, ok = skipQuestion(msg, off, endAtPointer); !ok {
			return nil
		}
	}
	for i := range rr + ar {
		start := off
		if off, ok = skipRR(msg, off); !ok {
			return nil
		}
		if i >= rr && isOPT(msg, start) {
			if _, err := hideVerdict(msg[start+optLen:off], false); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckClientSubnet tells whether query, which [ParseQuery] read into q,
// can go upstream under [Rewrite.HideClientSubnet], where
// [AppendUpstreamQuery] would refuse it with an error. When it cannot, rcode
// is what the proxy answers instead, having sent nothing anywhere: FORMERR
// for a malformed ECS option ([ErrBadClientSubnet]), REFUSED for a subnet
// that cannot be taken out ([ErrClientSubnetKept]). A query without an ECS
// option costs one look at its OPT record, and it does not allocate.
func CheckClientSubnet(query []byte, q *Query) (rcode int, ok bool) {
	if !q.EDNS {
		return RcodeSuccess, true
	}
	rd := query[q.optStart+optLen : q.optEnd]
	s := readSubnets(rd)
	if !s.hide && !s.bad {
		return RcodeSuccess, true // the common case, decided without a walk
	}
	l, walked := scan(query, 1)
	_, err := hideVerdict(rd, walked && rewritable(query, l))
	switch {
	case errors.Is(err, ErrBadClientSubnet):
		return RcodeFormErr, false
	case err != nil:
		return RcodeRefused, false
	}
	return RcodeSuccess, true
}
