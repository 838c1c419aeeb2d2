package dnsmsg

import "encoding/binary"

// AdvertisedUDPSize is the payload size the proxy states in the OPT records of
// its own replies: the DNS Flag Day 2020 value, safe from fragmentation.
const AdvertisedUDPSize = 1232

// optLen is the size of a bare OPT record: root name, type, class, TTL and an
// empty RDATA.
const optLen = 11

// Reply builds the proxy's own answer to q with the given response code:
// the client's ID, opcode, RD and CD bits, the question, and an OPT record
// when the query had one. It is used for REFUSED, SERVFAIL and FORMERR.
func Reply(q *Query, rcode int) []byte {
	return ReplyEDE(q, rcode, EDENone)
}

// ReplyEDE is Reply with, when q had an OPT record, the Extended DNS Error
// e in it (RFC 8914), saying why the proxy answered itself. A client that
// sent no OPT record gets none (RFC 6891 §7), so the reply is the same as
// Reply's; with one, the option adds at most 40 bytes, and no reply of the
// proxy's own exceeds 512 bytes.
func ReplyEDE(q *Query, rcode int, e EDE) []byte {
	flags := flagQR | q.Flags&(opcodeMask|flagRD|flagCD) | uint16(rcode&rcodeMask)
	return build(q, q.ID, flags, nil, e)
}

// TruncatedReply builds the proxy's own empty NOERROR reply to q with TC
// set, which sends a UDP client to TCP without an answer (RFC 1035
// §4.2.1), with the Extended DNS Error e when q had an OPT record: the
// reply to a zone transfer asked over UDP, or a rate limiter's "slip".
func TruncatedReply(q *Query, e EDE) []byte {
	flags := flagQR | flagTC | q.Flags&(opcodeMask|flagRD|flagCD)
	return build(q, q.ID, flags, nil, e)
}

// Truncated builds the reply that replaces an answer too large for a UDP
// client: the answer's ID, flags and rcode with TC set, the question of the
// query, no records, and the answer's OPT record stripped of its options (or a
// bare one when the query had EDNS and the answer did not), so that the client retries over TCP
// (RFC 1035 §4.2.1, RFC 6891 §7). answer must be at least HeaderLen long.
func Truncated(q *Query, answer []byte) []byte {
	flags := binary.BigEndian.Uint16(answer[2:]) | flagTC
	var opt []byte
	if q.EDNS {
		if s, _, ok := FindOPT(answer); ok {
			// The answer's OPT header (size, extended rcode, version,
			// flags) without its options: padding or cookies would
			// only make the reply bigger than the client can take.
			opt = append(answer[s:s+optLen-2:s+optLen-2], 0, 0)
		}
	}
	return build(q, ID(answer), flags, opt, EDENone)
}

// build makes a reply with no records: the header, q's question and, when
// q had EDNS, the OPT record opt or, if nil, one of the proxy's own, with
// the option e unless it is EDENone.
func build(q *Query, id, flags uint16, opt []byte, e EDE) []byte {
	n := HeaderLen + len(q.Question)
	if q.EDNS {
		if opt == nil {
			n += optLen + e.edeLen()
		} else {
			n += len(opt)
		}
	}
	msg := make([]byte, HeaderLen, n)
	binary.BigEndian.PutUint16(msg[0:], id)
	binary.BigEndian.PutUint16(msg[2:], flags)
	if len(q.Question) > 0 {
		binary.BigEndian.PutUint16(msg[4:], 1)
	}
	msg = append(msg, q.Question...)
	if q.EDNS {
		binary.BigEndian.PutUint16(msg[10:], 1)
		if opt != nil {
			msg = append(msg, opt...)
		} else {
			// Keep the client's DO bit; version 0.
			rdlen := e.edeLen()
			msg = append(msg, 0, 0, typeOPT, byte(AdvertisedUDPSize>>8), byte(AdvertisedUDPSize&0xFF),
				0, 0, byte(q.OPTTTL>>8)&0x80, 0, byte(rdlen>>8), byte(rdlen))
			if rdlen > 0 {
				msg = appendEDE(msg, e)
			}
		}
	}
	return msg
}
