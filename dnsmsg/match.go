package dnsmsg

import "encoding/binary"

// AnswerMatches reports whether answer is a response to query, beyond the
// ID that led to it: the QR bit set, the same opcode, and the same question
// section, question for question, each with the same type and class and the
// same name compared case-insensitively (DNS 0x20 and resolvers that change
// case are fine). An answer with no question matches only when it reports
// an error other than NXDOMAIN, as servers may send FORMERR, SERVFAIL,
// NOTIMP or REFUSED without one; it then carries no records to mislead a
// client. A query with no question wants an answer with none.
//
// It reads untrusted bytes, follows compression pointers with a bound, and
// does not allocate: it runs once per answer.
func AnswerMatches(query, answer []byte) bool {
	return responds(query, answer, false)
}

// TransferMessageMatches is AnswerMatches for a message of a zone transfer
// after the first, which may carry no question whatever its rcode (RFC 5936
// §2.2.1).
func TransferMessageMatches(query, msg []byte) bool {
	return responds(query, msg, true)
}

func responds(query, answer []byte, emptyOK bool) bool {
	if len(query) < HeaderLen || len(answer) < HeaderLen {
		return false
	}
	qf := binary.BigEndian.Uint16(query[2:])
	af := binary.BigEndian.Uint16(answer[2:])
	if af&flagQR == 0 || af&opcodeMask != qf&opcodeMask {
		return false
	}
	qd := binary.BigEndian.Uint16(query[4:])
	ad := binary.BigEndian.Uint16(answer[4:])
	if ad == 0 && qd != 0 {
		rcode := af & rcodeMask
		return emptyOK || rcode != RcodeSuccess && rcode != RcodeNXDomain
	}
	if ad != qd {
		return false
	}
	qo, ao := HeaderLen, HeaderLen
	for range qd {
		var ok bool
		if qo, ao, ok = sameName(query, qo, answer, ao); !ok {
			return false
		}
		if qo+4 > len(query) || ao+4 > len(answer) ||
			binary.BigEndian.Uint32(query[qo:]) != binary.BigEndian.Uint32(answer[ao:]) {
			return false // type and class
		}
		qo += 4
		ao += 4
	}
	return true
}

// sameName compares the names at a[ai:] and b[bi:] label by label, ASCII
// case folded, following compression pointers. It returns the offsets just
// past each name where it stands (past the first pointer, if any).
func sameName(a []byte, ai int, b []byte, bi int) (aEnd, bEnd int, ok bool) {
	aEnd, bEnd = -1, -1
	hops, total := 0, 0
	for {
		if ai, aEnd, ok = followPointers(a, ai, aEnd, &hops); !ok {
			return 0, 0, false
		}
		if bi, bEnd, ok = followPointers(b, bi, bEnd, &hops); !ok {
			return 0, 0, false
		}
		l := int(a[ai])
		if int(b[bi]) != l || l&maxPointer != 0 {
			return 0, 0, false // different lengths, or an obsolete label type
		}
		if l == 0 {
			if aEnd < 0 {
				aEnd = ai + 1
			}
			if bEnd < 0 {
				bEnd = bi + 1
			}
			return aEnd, bEnd, true
		}
		if total += l + 1; total > 254 || ai+1+l > len(a) || bi+1+l > len(b) {
			return 0, 0, false
		}
		for i := 1; i <= l; i++ {
			if lower(a[ai+i]) != lower(b[bi+i]) {
				return 0, 0, false
			}
		}
		ai += l + 1
		bi += l + 1
	}
}

// followPointers moves off past any compression pointers that stand there,
// recording in end where the name ends in place at the first one. Both
// names share one bound on pointers, which ends any loop.
func followPointers(msg []byte, off, end int, hops *int) (int, int, bool) {
	for {
		if off >= len(msg) {
			return 0, 0, false
		}
		if msg[off]&maxPointer != maxPointer {
			return off, end, true
		}
		if off+2 > len(msg) || *hops >= 2*maxPointers {
			return 0, 0, false
		}
		*hops++
		if end < 0 {
			end = off + 2
		}
		off = int(binary.BigEndian.Uint16(msg[off:]) &^ (maxPointer << 8))
	}
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
