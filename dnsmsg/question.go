package dnsmsg

import (
	"encoding/binary"
	"strconv"
	"strings"
)

// QuestionString renders a question section parsed by ParseQuery as
// "name type", e.g. "www.example.org. AAAA", for logs. A dot or backslash
// inside a label is escaped with a backslash, and bytes outside printable
// ASCII as \DDD (RFC 1035 §5.1). It returns "" for an empty question.
func QuestionString(question []byte) string {
	if len(question) < 5 {
		return ""
	}
	var b strings.Builder
	name, pos := question[:len(question)-4], namePos{}
	for {
		label, next, _, ok := readLabels(name, pos, noPointer, true)
		if !ok || len(label) == 0 {
			break
		}
		pos = next
		for _, c := range label {
			switch {
			case c == '.' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c <= ' ' || c > '~':
				b.WriteByte('\\')
				b.WriteString(strconv.Itoa(int(c) + 1000)[1:])
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('.')
	}
	if b.Len() == 0 {
		b.WriteByte('.')
	}
	b.WriteByte(' ')
	b.WriteString(TypeString(binary.BigEndian.Uint16(question[len(question)-4:])))
	return b.String()
}

// FirstQuestion returns the raw first question of a message, query or
// answer, in the form QuestionString renders; nil when it has none or it
// does not parse. It is for logs.
func FirstQuestion(msg []byte) []byte {
	if len(msg) < HeaderLen || binary.BigEndian.Uint16(msg[4:]) == 0 {
		return nil
	}
	end, ok := skipQuestion(msg, HeaderLen, noPointer)
	if !ok {
		return nil
	}
	return msg[HeaderLen:end]
}

// TypeString returns the mnemonic of a common record type, or "TYPEnnn"
// (RFC 3597) for the others.
func TypeString(t uint16) string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

var typeNames = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
	28: "AAAA", 33: "SRV", 35: "NAPTR", 43: "DS", 46: "RRSIG", 47: "NSEC",
	48: "DNSKEY", 50: "NSEC3", 52: "TLSA", 64: "SVCB", 65: "HTTPS",
	99: "SPF", 255: "ANY", 257: "CAA",
}
