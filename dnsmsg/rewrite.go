package dnsmsg

import (
	"encoding/binary"
	"slices"
	"time"
)

// EDNS(0) option codes the proxy adds to queries and takes out of answers.
const (
	// OptionKeepalive is the edns-tcp-keepalive option (RFC 7828).
	OptionKeepalive = 11
	// OptionPadding is the Padding option (RFC 7830).
	OptionPadding = 12
)

// Record types that sign the message they end (RFC 8945, RFC 2931): adding
// or changing an option in such a message would break its signature.
const (
	typeSIG  = 24
	typeTSIG = 250
)

const (
	// maxMsgLen is the largest message a TCP length prefix can frame.
	maxMsgLen = 65535
	// optionHeaderLen is an option's code and length fields.
	optionHeaderLen = 4
)

// Rewrite says how a query is changed on its way to an upstream. The zero
// value changes nothing.
type Rewrite struct {
	// PadBlock pads every query to a multiple of this many bytes, DNS
	// message only (no TCP length prefix), with an EDNS(0) Padding option
	// (RFC 7830), so that the length of the encrypted record tells an
	// observer less about the name asked. RFC 8467 §4.1 recommends the
	// block-length strategy with 128 for queries. Zero or less: no padding.
	PadBlock int
	// Keepalive adds an empty edns-tcp-keepalive option, the client side of
	// RFC 7828 §3.2.1, so that the resolver says in its answer how long it
	// keeps an idle connection open.
	Keepalive bool
	// HideClientSubnet replaces each EDNS Client Subnet option (RFC 7871)
	// the client sent with one of SOURCE PREFIX-LENGTH 0, FAMILY kept, so
	// that no bit of the client's address leaves (see [SubnetHide]); the
	// answer gets the client's own option back (see [CleanAnswer]). A
	// query whose subnet cannot be hidden is not sent at all (see
	// [CheckClientSubnet]). The rewrite never adds an ECS option.
	HideClientSubnet bool
}

// Sent is what [AppendUpstreamQuery] changed in a query that [CleanAnswer]
// must undo in its answer. The zero value: nothing.
type Sent struct {
	// AddedOPT reports that the rewrite added an OPT record the client had
	// not sent.
	AddedOPT bool
	// subnetStart and subnetEnd bound, in the client's query, its first
	// ECS option, sent upstream with its subnet hidden; equal when none
	// was.
	subnetStart, subnetEnd uint16
}

// HidSubnet reports whether the query's subnet was hidden, so that the
// client's ECS option is put back in the answer.
func (s Sent) HidSubnet() bool { return s.subnetEnd > s.subnetStart }

// AppendUpstreamQuery appends query to dst as it is to be sent upstream and
// reports, in sent, what CleanAnswer must undo in the answer.
//
// The query's OPT record loses any Padding and edns-tcp-keepalive options
// the client sent (a client's padding is sized for its own hop, and keepalive
// belongs to the connection, which is the proxy's), keeps every other option
// in order, byte for byte but for the ECS options r.HideClientSubnet
// rewrites, then gets those r asks for: keepalive first, padding last, sized
// so the whole message is a multiple of r.PadBlock. Without an OPT record,
// one is added at the end of the additional section: UDP size
// [AdvertisedUDPSize], version 0, no DO bit, holding only those options.
// Nothing else in the message changes.
//
// The query is appended unchanged, with nothing to undo, when r asks for
// nothing, when the message cannot be walked safely (malformed, more than
// one question or OPT record, trailing bytes, a compression pointer that is
// not backwards or that leads into the bytes that would move), when it is
// signed with TSIG or SIG(0), or when the result would exceed 65535 bytes.
// Under r.HideClientSubnet no query leaves with its subnet: one that only
// the added options would push past 65535 bytes leaves hidden without them;
// for one that cannot be rewritten (signed, not safely walkable) the error
// is ErrClientSubnetKept, for a malformed ECS option ErrBadClientSubnet,
// and dst comes back as it was: such a query must not be sent (see
// [CheckClientSubnet], which tells the same in advance).
//
// It does not modify query, which must not overlap dst, and does not
// allocate when dst has room for the result: it runs once per query.
func AppendUpstreamQuery(dst, query []byte, r Rewrite) (out []byte, sent Sent, err error) {
	pad := max(r.PadBlock, 0)
	if pad == 0 && !r.Keepalive && !r.HideClientSubnet {
		return append(dst, query...), sent, nil
	}
	l, walked := scan(query, 1)
	ok := walked && rewritable(query, l)
	var sub subnets
	if r.HideClientSubnet {
		switch {
		case !walked:
			err = unwalkedVerdict(query)
		case l.optEnd != 0:
			sub, err = hideVerdict(query[l.optStart+optLen:l.optEnd], ok)
		}
		if err != nil {
			return dst, sent, err
		}
		if pad == 0 && !r.Keepalive && !sub.hide {
			return append(dst, query...), sent, nil
		}
	}
	if !ok {
		return append(dst, query...), sent, nil
	}
	hasOPT := l.optEnd != 0
	var rd []byte // the client's option bytes
	head := len(query)
	if hasOPT {
		head = l.optStart + optLen
		rd = query[head:l.optEnd]
	} else if binary.BigEndian.Uint16(query[10:]) == 0xFFFF {
		return append(dst, query...), sent, nil // no room for one more record
	}
	kept, ok := keptOptions(rd, r.HideClientSubnet)
	if !ok {
		return append(dst, query...), sent, nil
	}
	keepalive := r.Keepalive
	size, padding := upstreamSize(len(query), head, kept, l.optEnd, hasOPT, keepalive, pad)
	if size > maxMsgLen {
		if !sub.hide {
			return append(dst, query...), sent, nil
		}
		// Hiding only shrinks the query, which rewritable holds to
		// 65535 bytes: it fits without the added options.
		keepalive, pad = false, 0
		size, padding = upstreamSize(len(query), head, kept, l.optEnd, hasOPT, keepalive, pad)
	}

	out = slices.Grow(dst, size)
	base := len(out)
	if hasOPT {
		out = append(out, query[:head]...)
		for o := 0; o < len(rd); {
			code, n, _ := nextOption(rd, o)
			switch {
			case code == OptionPadding || code == OptionKeepalive:
			case code == OptionClientSubnet && r.HideClientSubnet:
				// FAMILY kept, SOURCE and SCOPE PREFIX-LENGTH 0, no
				// ADDRESS (RFC 7871 §6, §7.1.2). readSubnets checked
				// that FAMILY is there.
				out = append(out, 0, OptionClientSubnet, 0, 4, rd[o+4], rd[o+5], 0, 0)
			default:
				out = append(out, rd[o:o+n]...)
			}
			o += n
		}
	} else {
		out = append(out, query...)
		ar := binary.BigEndian.Uint16(query[10:])
		binary.BigEndian.PutUint16(out[base+10:], ar+1)
		out = append(out, 0, 0, typeOPT, AdvertisedUDPSize>>8, AdvertisedUDPSize&0xFF, 0, 0, 0, 0, 0, 0)
		head = len(query) + optLen
	}
	if keepalive {
		out = append(out, 0, OptionKeepalive, 0, 0)
	}
	if pad > 0 {
		out = append(out, 0, OptionPadding, byte(padding>>8), byte(padding))
		n := len(out)
		out = out[:n+padding] // within the capacity grown above
		clear(out[n:])
	}
	binary.BigEndian.PutUint16(out[base+head-2:], uint16(len(out)-base-head))
	if hasOPT {
		out = append(out, query[l.optEnd:]...)
	}
	sent.AddedOPT = !hasOPT
	if sub.hide {
		sent.subnetStart, sent.subnetEnd = uint16(head+sub.first), uint16(head+sub.end)
	}
	return out, sent, nil
}

// rewritable reports whether a query that scan walked as l can have the
// bytes from its OPT record on moved: nothing signs it, nothing follows its
// last record, no compression pointer leads to or past its OPT record, and
// it is no longer than a TCP length prefix can frame.
func rewritable(query []byte, l layout) bool {
	return !l.signed && l.end == len(query) && len(query) <= maxMsgLen &&
		(l.optEnd == 0 || l.reach <= l.optStart)
}

// upstreamSize returns the length of a rewritten query, and of the padding
// in it: the query of n bytes whose options start at head (its end when it
// has no OPT record) and whose OPT record ends at optEnd, with kept bytes of
// the client's options, and the options added.
func upstreamSize(n, head, kept, optEnd int, hasOPT, keepalive bool, pad int) (size, padding int) {
	size = head + kept + n - optEnd
	if !hasOPT {
		size = n + optLen
	}
	if keepalive {
		size += optionHeaderLen
	}
	if pad > 0 {
		size += optionHeaderLen
		padding = (pad - size%pad) % pad
		size += padding
	}
	return size, padding
}

// CleanAnswer removes from an upstream's answer, in place, what the proxy's
// rewrite caused and what a plaintext client must not see, and returns the
// keepalive timeout the resolver advertised. query is the client's own
// query, as it came, and sent what AppendUpstreamQuery reported changing in
// it. It returns a reslice of answer.
//
// With sent.AddedOPT (the proxy added the OPT record) the OPT record goes and
// ARCOUNT drops by one, so the client gets the answer it would have had
// without EDNS; an OPT record carrying an extended RCODE is kept, stripped as
// below, since without it the RCODE would read as another. Otherwise the
// Padding and edns-tcp-keepalive options go: padding is sized for the
// encrypted hop and would only make a UDP answer truncate sooner, and
// keepalive describes the proxy's connection, not the client's.
//
// When the query's subnet was hidden (sent.HidSubnet) and the answer carries
// ECS options (the resolver's echo of the hidden one), the first becomes the
// client's own first ECS option, byte for byte: its FAMILY, SOURCE
// PREFIX-LENGTH and ADDRESS, which RFC 7871 §7.3 and §11.2 have a requestor
// check against its query and drop the answer on a mismatch, and SCOPE
// PREFIX-LENGTH 0, which it held as a query's: the answer was made with no
// bit of the client's address, so it suits every address (§7.2.1); a
// resolver's own SCOPE would speak of the address information of the /0
// query (§7.3), not of the client's. Further ECS options go. An answer
// without an ECS option gets none (§7.2.1: a resolver that does not
// implement ECS must not include one). The answer may grow by
// [MaxCleanGrowth] at most, in place when its capacity allows; past 65535
// bytes, the echo is taken out rather than replaced.
//
// Every other byte stays as it was. The timeout is reported, in
// hasKeepalive, when the OPT record held an edns-tcp-keepalive option with a
// 2-byte TIMEOUT (RFC 7828 §3.1, units of 100 ms); one without a timeout or
// of another length is removed but not reported. An answer that cannot be
// walked safely (see AppendUpstreamQuery; compressed names are walked, never
// trusted) is returned unchanged, and reports nothing. It does not allocate
// when answer has room for what it puts back.
func CleanAnswer(answer, query []byte, sent Sent) (out []byte, keepalive time.Duration, hasKeepalive bool) {
	l, ok := scan(answer, maxMsgLen)
	if !ok || l.optEnd == 0 || l.end != len(answer) || l.reach > l.optStart {
		return answer, 0, false
	}
	rdStart := l.optStart + optLen
	rd := answer[rdStart:l.optEnd]
	if _, ok := keptOptions(rd, false); !ok {
		return answer, 0, false
	}
	for o := 0; o < len(rd); {
		code, n, _ := nextOption(rd, o)
		if code == OptionKeepalive && n == optionHeaderLen+2 && !hasKeepalive {
			keepalive = time.Duration(binary.BigEndian.Uint16(rd[o+optionHeaderLen:])) * 100 * time.Millisecond
			hasKeepalive = true
		}
		o += n
	}
	extRcode := answer[l.optStart+5] != 0
	if sent.AddedOPT && !extRcode {
		n := copy(answer[l.optStart:], answer[l.optEnd:])
		ar := binary.BigEndian.Uint16(answer[10:])
		binary.BigEndian.PutUint16(answer[10:], ar-1)
		return answer[:l.optStart+n], keepalive, hasKeepalive
	}
	restore := sent.HidSubnet() && int(sent.subnetEnd) <= len(query)
	echo := -1 // where the echo to be replaced now starts
	w := rdStart
	for o := 0; o < len(rd); {
		code, n, _ := nextOption(rd, o)
		drop := code == OptionPadding || code == OptionKeepalive
		if restore && code == OptionClientSubnet {
			drop = echo >= 0
			if !drop {
				echo = w
			}
		}
		if !drop {
			w += copy(answer[w:], rd[o:o+n]) // w never passes rdStart+o: safe in place
		}
		o += n
	}
	rdEnd := w
	w += copy(answer[w:], answer[l.optEnd:])
	answer = answer[:w]
	if echo >= 0 {
		mine := query[sent.subnetStart:sent.subnetEnd]
		old := optionHeaderLen + int(binary.BigEndian.Uint16(answer[echo+2:]))
		if len(answer)-old+len(mine) > maxMsgLen {
			mine = nil
		}
		answer = slices.Replace(answer, echo, echo+old, mine...)
		rdEnd += len(mine) - old
	}
	binary.BigEndian.PutUint16(answer[rdStart-2:], uint16(rdEnd-rdStart))
	return answer, keepalive, hasKeepalive
}

// keptOptions checks that the OPT RDATA rd is a whole sequence of options
// and returns the length of those that are neither Padding nor keepalive,
// with each ECS option counted as it is sent hidden when hideSubnet is set.
func keptOptions(rd []byte, hideSubnet bool) (int, bool) {
	kept := 0
	for o := 0; o < len(rd); {
		code, n, ok := nextOption(rd, o)
		if !ok {
			return 0, false
		}
		switch {
		case code == OptionPadding || code == OptionKeepalive:
		case code == OptionClientSubnet && hideSubnet:
			kept += hiddenLen
		default:
			kept += n
		}
		o += n
	}
	return kept, true
}

// nextOption returns the code and the full length (header included) of the
// option at offset o of the OPT RDATA rd.
func nextOption(rd []byte, o int) (code uint16, n int, ok bool) {
	if o+optionHeaderLen > len(rd) {
		return 0, 0, false
	}
	n = optionHeaderLen + int(binary.BigEndian.Uint16(rd[o+2:]))
	if o+n > len(rd) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(rd[o:]), n, true
}

// layout is what scan found in a message.
type layout struct {
	// optStart and optEnd are the OPT record's bounds; optEnd is 0 when the
	// additional section holds none.
	optStart, optEnd int
	// end is the offset just past the last record.
	end int
	// reach is one past the furthest byte that a compression pointer
	// leads a reader to; 0 when no name is compressed.
	reach int
	// signed reports a TSIG or SIG(0) record in the additional section.
	signed bool
}

// scan walks a message of at most maxQD questions. Unlike [FindOPT] it also
// finds out where compression pointers lead, so that a caller can tell
// whether moving the bytes from the OPT record on would change what a name
// reads: a pointer must lead backwards (RFC 1035 §4.1.4: to a prior
// occurrence) and past the header, and is followed, without allocating,
// through the owner names and the names in the RDATA of the types that may
// be compressed (RFC 3597 §4). It fails on anything it cannot walk, on a
// second OPT record, and on bad pointers.
func scan(msg []byte, maxQD int) (l layout, ok bool) {
	if len(msg) < HeaderLen {
		return l, false
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rr := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:]))
	ar := int(binary.BigEndian.Uint16(msg[10:]))
	if qd > maxQD {
		return l, false
	}
	w := walker{msg: msg}
	off := HeaderLen
	for range qd {
		end, ok := w.name(off)
		if !ok || end+4 > len(msg) {
			return l, false
		}
		off = end + 4
	}
	for i := range rr + ar {
		nameEnd, ok := w.name(off)
		if !ok || nameEnd+10 > len(msg) {
			return l, false
		}
		typ := binary.BigEndian.Uint16(msg[nameEnd:])
		rdStart := nameEnd + 10
		rdEnd := rdStart + int(binary.BigEndian.Uint16(msg[nameEnd+8:]))
		if rdEnd > len(msg) || !w.rdata(typ, rdStart, rdEnd) {
			return l, false
		}
		if i >= rr {
			switch {
			case isOPT(msg, off):
				if l.optEnd != 0 {
					return l, false // at most one OPT (RFC 6891 §6.1.1)
				}
				l.optStart, l.optEnd = off, rdEnd
			case typ == typeTSIG || typ == typeSIG:
				l.signed = true
			}
		}
		off = rdEnd
	}
	l.end, l.reach = off, w.reach
	return l, true
}

// walker walks the names of a message and records how far their
// compression pointers lead.
type walker struct {
	msg   []byte
	reach int
}

// name returns the offset just past the name at off, following its
// compression pointers, each of which must lead backwards and past the
// header, and extends w.reach to the last byte they lead to.
func (w *walker) name(off int) (int, bool) {
	end, reach, ok := skipName(w.msg, off, followBackwards)
	w.reach = max(w.reach, reach)
	return end, ok
}

// rdata walks the names in the RDATA at msg[start:end] of the types whose
// names may be compressed: those of RFC 1035 that RFC 3597 §4 calls
// well-known, and those it says a receiver should decompress too. Other
// types must not be compressed, and their RDATA is opaque.
func (w *walker) rdata(typ uint16, start, end int) bool {
	var skip, strs, names int
	switch typ {
	case 2, 3, 4, 5, 7, 8, 9, 12, 30: // NS, MD, MF, CNAME, MB, MG, MR, PTR, NXT
		names = 1
	case 6, 14, 17: // SOA, MINFO, RP
		names = 2
	case 15, 18, 21: // MX, AFSDB, RT
		skip, names = 2, 1
	case 26: // PX
		skip, names = 2, 2
	case 33: // SRV
		skip, names = 6, 1
	case 35: // NAPTR: order, preference, flags, services, regexp, replacement
		skip, strs, names = 4, 3, 1
	case typeSIG:
		skip, names = 18, 1
	default:
		return true
	}
	off := start + skip
	for range strs {
		if off >= end {
			return false
		}
		off += 1 + int(w.msg[off])
	}
	for range names {
		if off >= end {
			return false
		}
		e, ok := w.name(off)
		if !ok || e > end {
			return false
		}
		off = e
	}
	return off <= end
}
