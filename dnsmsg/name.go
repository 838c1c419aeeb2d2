package dnsmsg

import "encoding/binary"

// The rules of a name in wire form (RFC 1035 §3.1, §4.1.4): every reader of
// names in this package goes through readLabels, the only place they are
// written.
const (
	// pointerBits mark a compression pointer in a length octet; a label's
	// length has both clear, and the two mixes are obsolete label types
	// (RFC 6891 §5).
	pointerBits = 0xC0
	// maxNameOctets is how long a name may be, every label with its length
	// octet and the root's zero octet (RFC 1035 §2.3.4).
	maxNameOctets = 255
	// maxPointers is how many compression pointers one name may chain: as
	// many as a 255-octet name can hold, the limit miekg/dns applies too.
	// It ends any pointer loop.
	maxPointers = 126
)

// pointerRule says what readLabels does at a compression pointer.
type pointerRule uint8

const (
	// noPointer: a pointer breaks the name, as in the question of a query,
	// which has nothing before it to point at.
	noPointer pointerRule = iota
	// endAtPointer: a pointer ends the name unread; for skipping over a
	// name, which needs only to know where it ends.
	endAtPointer
	// followPointers: pointers are followed wherever they lead, within the
	// message.
	followPointers
	// followBackwards: pointers are followed, and each must lead backwards
	// (to a prior occurrence, RFC 1035 §4.1.4) and past the header;
	// readLabels reports how far they led.
	followBackwards
)

// namePos is where a reader of a name stands and what it has read. It is
// passed and returned by value and has at most four fields, so that the
// compiler keeps it in registers: a reader's state stored and loaded at
// every step would cost more than the rules do.
type namePos struct {
	off int // where the next length octet is
	// end is the offset just past the name where it stands: past its
	// root octet, or past its first pointer; 0 until known.
	end int
	// octets counts the label octets read, length octets included, and
	// hops the pointers followed.
	octets, hops int
}

// readLabels reads the name in msg from pos, following or refusing
// compression pointers as rule says, and fails a name that runs off the
// message, has a length octet of an obsolete label type, is longer than
// maxNameOctets, or chains more than maxPointers pointers. With one set it
// stops after a label and returns it, without its length octet; otherwise
// it reads on. At the root, and under endAtPointer at a pointer, it returns
// an empty label with next.end set: the name is over. Read whole (one
// unset) under followBackwards, reach is one past the furthest octet that
// the name's pointers led to; 0 when it has none.
//
// It is the one place of the rules. It reads untrusted bytes and does not
// allocate.
func readLabels(msg []byte, pos namePos, rule pointerRule, one bool) (label []byte, next namePos, reach int, ok bool) {
	for {
		off := pos.off
		if off >= len(msg) {
			return nil, pos, 0, false
		}
		l := int(msg[off])
		switch {
		case l == 0:
			if pos.end == 0 {
				pos.end = off + 1
			}
			if pos.hops > 0 {
				reach = max(reach, off+1)
			}
			return msg[off:off], pos, reach, true
		case l&pointerBits == pointerBits:
			if rule == noPointer || off+2 > len(msg) {
				return nil, pos, 0, false
			}
			if pos.end == 0 {
				pos.end = off + 2
			}
			if rule == endAtPointer {
				return msg[off:off], pos, reach, true
			}
			if pos.hops++; pos.hops > maxPointers {
				return nil, pos, 0, false
			}
			to := int(binary.BigEndian.Uint16(msg[off:]) &^ (pointerBits << 8))
			if rule == followBackwards {
				if to < HeaderLen || to >= off {
					return nil, pos, 0, false
				}
				if pos.hops > 1 {
					reach = max(reach, off+2)
				}
			}
			pos.off = to
			continue
		case l&pointerBits != 0:
			return nil, pos, 0, false
		}
		// The label and at least one more length octet must be there, and
		// the root's octet must still fit.
		pos.octets += 1 + l
		if pos.octets > maxNameOctets-1 || off+1+l >= len(msg) {
			return nil, pos, 0, false
		}
		pos.off = off + 1 + l
		if one {
			return msg[off+1 : pos.off], pos, reach, true
		}
	}
}

// skipName returns the offset just past the name at msg[off:], where it
// stands, and under followBackwards how far its pointers led.
func skipName(msg []byte, off int, rule pointerRule) (end, reach int, ok bool) {
	_, pos, reach, ok := readLabels(msg, namePos{off: off}, rule, false)
	return pos.end, reach, ok
}

// sameName compares the names at a[ai:] and b[bi:] label by label, ASCII
// case folded, following compression pointers. It returns the offsets just
// past each name where it stands.
func sameName(a []byte, ai int, b []byte, bi int) (aEnd, bEnd int, ok bool) {
	pa, pb := namePos{off: ai}, namePos{off: bi}
	for {
		la, nextA, _, okA := readLabels(a, pa, followPointers, true)
		lb, nextB, _, okB := readLabels(b, pb, followPointers, true)
		if !okA || !okB || !equalFold(la, lb) {
			return 0, 0, false
		}
		if len(la) == 0 {
			return nextA.end, nextB.end, true
		}
		pa, pb = nextA, nextB
	}
}

// equalFold reports whether two labels are the same, ASCII case folded: the
// case-insensitivity of RFC 4343, which leaves other octets alone.
func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
