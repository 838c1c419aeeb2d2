package dnsmsg

import "encoding/binary"

// NameReader reads the name of a query's question one label at a time,
// under the rules of readLabels for a question: no compression pointer.
// It is a value of four words, kept on its caller's stack, and reading
// allocates nothing.
type NameReader struct {
	msg []byte // nil once the name is found broken
	pos namePos
}

// QuestionName returns a reader of the name of msg's first question. ok is
// false when msg is shorter than a header or its QDCOUNT is 0: it asks no
// name. Nothing past the name is read, so a message whose other sections
// are broken, or that has more than one question, is read all the same.
func QuestionName(msg []byte) (r NameReader, ok bool) {
	if len(msg) < HeaderLen || binary.BigEndian.Uint16(msg[4:]) == 0 {
		return NameReader{}, false
	}
	return NameReader{msg: msg, pos: namePos{off: HeaderLen}}, true
}

// Next returns the name's next label, from the left, without its length
// octet and as it was sent (case included), in msg's own bytes; an empty
// label once the name is over, at its root, and again at every call after.
// ok is false when the name is broken: it runs off the message, holds a
// compression pointer (a question has nothing before it to point at) or an
// obsolete label type, or is longer than 255 octets; every call after
// fails too.
func (r *NameReader) Next() (label []byte, ok bool) {
	label, r.pos, _, ok = readLabels(r.msg, r.pos, noPointer, true)
	if !ok {
		r.msg = nil
	}
	return label, ok
}
