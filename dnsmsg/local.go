package dnsmsg

import (
	"encoding/binary"
	"errors"
)

// What the proxy needs to answer a few questions about itself, in the
// CHAOS class as servers have long done (version.bind), and what its
// own command needs to read the answer back.

// Record types and classes of the proxy's own answers (RFC 1035 §3.2).
const (
	TypeTXT    = 16
	TypeANY    = 255
	ClassCHAOS = 3
)

// MaxTXTString is the longest character-string a TXT record holds
// (RFC 1035 §3.3).
const MaxTXTString = 255

// MaxMessage is the largest DNS message: what a TCP length prefix can
// say (RFC 1035 §4.2.2).
const MaxMessage = 65535

// flagAA is the Authoritative Answer bit.
const flagAA = 1 << 10

// ErrNotTXTAnswer reports a message that TXTAnswers cannot read as the
// answer to a query: no QR, or a section that does not parse.
var ErrNotTXTAnswer = errors.New("dnsmsg: not a well-formed answer")

// QuestionClass returns the class of a question section as Query holds
// it; 0 when there is none.
func QuestionClass(question []byte) uint16 {
	if len(question) < 5 {
		return 0
	}
	return binary.BigEndian.Uint16(question[len(question)-2:])
}

// QuestionType returns the type of a question section as Query holds it; 0
// when there is none.
func QuestionType(question []byte) uint16 {
	if len(question) < 5 {
		return 0
	}
	return binary.BigEndian.Uint16(question[len(question)-4:])
}

// WireName returns name, in presentation form with or without its final
// dot, in wire form: uncompressed labels, each after its length. Escapes
// are not supported.
func WireName(name string) ([]byte, error) { return appendName(nil, name) }

// InZone reports whether the name of a question section as Query holds it
// (uncompressed, as ParseQuery requires) is zone, a name in wire form, or
// below it, ASCII case folded; exact reports whether it is zone itself.
func InZone(question, zone []byte) (in, exact bool) {
	if len(question) < 5 {
		return false, false
	}
	name := question[:len(question)-4]
	for off := 0; off < len(name); off += 1 + int(name[off]) {
		if len(name)-off == len(zone) && equalFold(name[off:], zone) {
			return true, off == 0
		}
		if name[off] == 0 {
			break
		}
	}
	return false, false
}

// LocalReply builds the proxy's own authoritative answer to q: the client's
// ID, opcode, RD and CD bits, AA set, the given rcode, the question, then
// one TXT record per text, of q's class, TTL 0, owned by the question's
// name, each text in as many character-strings as it needs, and an OPT
// record when the query had one. Records that would take the message past
// limit bytes are left out, and TC is set to say so. q must have a question.
func LocalReply(q *Query, rcode int, texts []string, limit int) []byte {
	flags := flagQR | flagAA | q.Flags&(opcodeMask|flagRD|flagCD) | uint16(rcode&rcodeMask)
	msg := build(q, q.ID, flags, nil, EDENone)
	// The records go between the question and the OPT record, if any.
	var opt []byte
	if q.EDNS {
		opt = append(opt, msg[HeaderLen+len(q.Question):]...)
		msg = msg[:HeaderLen+len(q.Question)]
	}
	class := QuestionClass(q.Question)
	n := 0
	for _, text := range texts {
		rdlen := len(text) + (len(text)+MaxTXTString-1)/MaxTXTString
		if len(text) == 0 {
			rdlen = 1 // one empty string
		}
		if rdlen > 0xFFFF || len(msg)+12+rdlen+len(opt) > limit {
			msg[2] |= flagTC >> 8
			break
		}
		// The owner is a pointer to the question's name, just past the
		// header.
		msg = append(msg, pointerBits, HeaderLen)
		msg = binary.BigEndian.AppendUint16(msg, TypeTXT)
		msg = binary.BigEndian.AppendUint16(msg, class)
		msg = binary.BigEndian.AppendUint32(msg, 0)
		msg = binary.BigEndian.AppendUint16(msg, uint16(rdlen))
		for rest := text; ; {
			part := rest[:min(len(rest), MaxTXTString)]
			msg = append(msg, byte(len(part)))
			msg = append(msg, part...)
			rest = rest[len(part):]
			if rest == "" {
				break
			}
		}
		n++
	}
	binary.BigEndian.PutUint16(msg[6:], uint16(n))
	return append(msg, opt...)
}

// TXTAnswers reads msg, an answer, and returns the text of each TXT record
// in its answer section, in order, the character-strings of each joined;
// other records are skipped. The texts are copies. It fails with
// ErrNotTXTAnswer for a message that is not a response or does not parse.
func TXTAnswers(msg []byte) ([][]byte, error) {
	if len(msg) < HeaderLen || !IsResponse(msg) {
		return nil, ErrNotTXTAnswer
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	an := int(binary.BigEndian.Uint16(msg[6:]))
	off := HeaderLen
	var ok bool
	for range qd {
		if off, ok = skipQuestion(msg, off, endAtPointer); !ok {
			return nil, ErrNotTXTAnswer
		}
	}
	var texts [][]byte
	for range an {
		start := off
		if off, ok = skipRR(msg, off); !ok {
			return nil, ErrNotTXTAnswer
		}
		nameEnd, _, _ := skipName(msg, start, endAtPointer)
		if binary.BigEndian.Uint16(msg[nameEnd:]) != TypeTXT {
			continue
		}
		text, ok := joinStrings(msg[nameEnd+10 : off])
		if !ok {
			return nil, ErrNotTXTAnswer
		}
		texts = append(texts, text)
	}
	return texts, nil
}

// joinStrings returns the character-strings of a TXT record's RDATA joined
// into one, which must fill it exactly.
func joinStrings(rdata []byte) ([]byte, bool) {
	out := make([]byte, 0, len(rdata))
	for i := 0; i < len(rdata); {
		n := int(rdata[i])
		if i+1+n > len(rdata) {
			return nil, false
		}
		out = append(out, rdata[i+1:i+1+n]...)
		i += 1 + n
	}
	return out, len(rdata) > 0
}

// Opcode returns the query's opcode: 0 for a standard query.
func (q *Query) Opcode() int { return int(q.Flags&opcodeMask) >> 11 }
