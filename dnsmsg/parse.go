package dnsmsg

import "encoding/binary"

const typeOPT = 41

// Query is what the proxy needs to know about a client's query. It refers to
// the bytes it was parsed from and must not outlive them.
type Query struct {
	// ID is the client's message ID.
	ID uint16
	// Flags is the header's flags word.
	Flags uint16
	// Question holds the raw question section: empty when QDCOUNT is 0,
	// otherwise the name, type and class of the single question.
	Question []byte
	// EDNS reports whether the query carries an OPT record.
	EDNS bool
	// UDPSize is the requestor's UDP payload size from the OPT record; zero
	// when there is none.
	UDPSize uint16
	// OPTTTL is the OPT record's TTL field (extended rcode, version, DO bit).
	OPTTTL uint32

	// optStart and optEnd bound the OPT record, when EDNS.
	optStart, optEnd int
}

// MaxUDPAnswer returns the largest UDP answer the client accepts: 512 bytes
// without EDNS(0), otherwise the advertised payload size, never below 512
// (RFC 6891 §6.2.3, §6.2.5).
func (q *Query) MaxUDPAnswer() int {
	if !q.EDNS || q.UDPSize < MinUDPSize {
		return MinUDPSize
	}
	return int(q.UDPSize)
}

// ParseQuery reads the header, the question and the OPT record of a query.
// It fails with ErrShort or ErrNotQuery for packets that should be dropped
// silently, and with ErrMalformed for those that deserve a FORMERR.
func ParseQuery(msg []byte) (Query, error) {
	var q Query
	if len(msg) < HeaderLen {
		return q, ErrShort
	}
	q.ID = ID(msg)
	q.Flags = binary.BigEndian.Uint16(msg[2:])
	if q.Flags&flagQR != 0 {
		return q, ErrNotQuery
	}
	qd := binary.BigEndian.Uint16(msg[4:])
	an := binary.BigEndian.Uint16(msg[6:])
	ns := binary.BigEndian.Uint16(msg[8:])
	ar := binary.BigEndian.Uint16(msg[10:])
	off := HeaderLen
	switch qd {
	case 0:
	case 1:
		end, ok := skipQuestion(msg, off, noPointer)
		if !ok {
			return q, ErrMalformed
		}
		q.Question = msg[off:end]
		off = end
	default:
		// Multiple questions are undefined in practice (RFC 9619).
		return q, ErrMalformed
	}
	for i := 0; i < int(an)+int(ns); i++ {
		end, ok := skipRR(msg, off)
		if !ok {
			return q, ErrMalformed
		}
		off = end
	}
	for i := 0; i < int(ar); i++ {
		start := off
		end, ok := skipRR(msg, off)
		if !ok {
			return q, ErrMalformed
		}
		if isOPT(msg, start) {
			if q.EDNS {
				return q, ErrMalformed // at most one OPT (RFC 6891 §6.1.1)
			}
			q.EDNS = true
			q.UDPSize, q.OPTTTL = optFields(msg, start)
			q.optStart, q.optEnd = start, end
		}
		off = end
	}
	return q, nil
}

// MalformedEDNS reads the OPT record of a query that ParseQuery rejected
// as malformed, so that the FORMERR reply may carry EDNS and say why (see
// ReplyEDE), but only when that record can be told for sure: every record
// the header counts lies within msg, walked as a reader that skips names
// would walk them (any number of questions, a compression pointer ending a
// name unread), and the additional section holds exactly one OPT record.
// Otherwise ok is false, and the reply should carry no OPT record: a query
// whose OPT record cannot be told apart from the bytes around it may not
// have one. It reads untrusted bytes, does not modify them and does not
// allocate.
func MalformedEDNS(msg []byte) (udpSize uint16, ttl uint32, ok bool) {
	if len(msg) < HeaderLen {
		return 0, 0, false
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rr := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:]))
	ar := int(binary.BigEndian.Uint16(msg[10:]))
	off := HeaderLen
	var walked bool
	for range qd {
		if off, walked = skipQuestion(msg, off, endAtPointer); !walked {
			return 0, 0, false
		}
	}
	for range rr {
		if off, walked = skipRR(msg, off); !walked {
			return 0, 0, false
		}
	}
	for range ar {
		start := off
		if off, walked = skipRR(msg, off); !walked {
			return 0, 0, false
		}
		if isOPT(msg, start) {
			if ok {
				return 0, 0, false // which one holds? (RFC 6891 §6.1.1)
			}
			udpSize, ttl = optFields(msg, start)
			ok = true
		}
	}
	return udpSize, ttl, ok
}

// FindOPT returns the bounds of the OPT record in any well-formed message.
func FindOPT(msg []byte) (start, end int, ok bool) {
	if len(msg) < HeaderLen {
		return 0, 0, false
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rr := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:]))
	ar := int(binary.BigEndian.Uint16(msg[10:]))
	off := HeaderLen
	for i := 0; i < qd; i++ {
		if off, ok = skipQuestion(msg, off, endAtPointer); !ok {
			return 0, 0, false
		}
	}
	for i := 0; i < rr; i++ {
		if off, ok = skipRR(msg, off); !ok {
			return 0, 0, false
		}
	}
	for i := 0; i < ar; i++ {
		s := off
		if off, ok = skipRR(msg, off); !ok {
			return 0, 0, false
		}
		if isOPT(msg, s) {
			return s, off, true
		}
	}
	return 0, 0, false
}

// skipQuestion returns the offset just past the question at off, whose name
// is read under rule: noPointer or endAtPointer.
func skipQuestion(msg []byte, off int, rule pointerRule) (int, bool) {
	end, _, ok := skipName(msg, off, rule)
	if !ok || end+4 > len(msg) {
		return 0, false
	}
	return end + 4, true
}

// skipRR returns the offset just past the resource record at off; a
// compression pointer ends its owner name unread.
func skipRR(msg []byte, off int) (int, bool) {
	end, _, ok := skipName(msg, off, endAtPointer)
	if !ok || end+10 > len(msg) {
		return 0, false
	}
	rdlen := int(binary.BigEndian.Uint16(msg[end+8:]))
	end += 10 + rdlen
	if end > len(msg) {
		return 0, false
	}
	return end, true
}

// isOPT reports whether the well-formed record at off is an OPT record: the
// root name followed by type 41.
func isOPT(msg []byte, off int) bool {
	return msg[off] == 0 && binary.BigEndian.Uint16(msg[off+1:]) == typeOPT
}

func optFields(msg []byte, off int) (size uint16, ttl uint32) {
	return binary.BigEndian.Uint16(msg[off+3:]), binary.BigEndian.Uint32(msg[off+5:])
}
