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
