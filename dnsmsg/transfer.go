package dnsmsg

import (
	"encoding/binary"
	"errors"
)

// Record types of zone transfers.
const (
	TypeSOA  = 6
	TypeIXFR = 251
	TypeAXFR = 252
)

// ErrBadTransfer reports a zone transfer whose messages do not follow RFC
// 5936 or RFC 1995: it cannot be told where it ends, so it must not be
// passed on as if whole.
var ErrBadTransfer = errors.New("dnsmsg: zone transfer does not start with an SOA record")

// IsTransfer reports whether q asks for a zone transfer: a standard query
// (opcode 0) for type AXFR or IXFR.
func IsTransfer(q *Query) bool {
	if len(q.Question) < 4 || q.Flags&opcodeMask != 0 {
		return false
	}
	t := binary.BigEndian.Uint16(q.Question[len(q.Question)-4:])
	return t == TypeAXFR || t == TypeIXFR
}

// TransferEnd follows the messages of a zone transfer's answer and tells
// which one is the last, from the SOA records that frame it: an AXFR ends
// with the second SOA record (RFC 5936 §2.2); an IXFR ends with its single
// SOA when the client is up to date, with the second SOA of the first
// serial when it is sent as a full zone, and with the third otherwise, the
// one that closes the last difference sequence (RFC 1995 §4). A first
// message that holds one SOA record alone is the whole answer, as RFC 1995
// §2 says an up-to-date client gets. A message with an error rcode ends it
// too. The zero value is not ready: use
// NewTransferEnd.
type TransferEnd struct {
	ixfr        bool
	records     int    // answer records seen
	serial      uint32 // the first SOA's serial
	ofSerial    int    // SOA records seen with that serial
	incremental bool   // an SOA with another serial came: difference sequences
}

// NewTransferEnd returns a TransferEnd for a transfer of type qtype
// (TypeAXFR or TypeIXFR).
func NewTransferEnd(qtype uint16) *TransferEnd {
	return &TransferEnd{ixfr: qtype == TypeIXFR}
}

// Next reads the next message of the transfer and reports whether it is the
// last. It fails with ErrBadTransfer when the first record is not an SOA,
// and with ErrMalformed when the message cannot be walked.
func (t *TransferEnd) Next(msg []byte) (last bool, err error) {
	if len(msg) < HeaderLen {
		return false, ErrMalformed
	}
	if Rcode(msg) != RcodeSuccess {
		return true, nil
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	an := int(binary.BigEndian.Uint16(msg[6:]))
	off := HeaderLen
	for range qd {
		var ok bool
		if off, ok = skipQuestion(msg, off, endAtPointer); !ok {
			return false, ErrMalformed
		}
	}
	first := t.records == 0
	for i := range an {
		typ, serial, end, ok := soaSerial(msg, off)
		if !ok {
			return false, ErrMalformed
		}
		off = end
		t.records++
		switch {
		case t.records == 1:
			if typ != TypeSOA {
				return false, ErrBadTransfer
			}
			t.serial, t.ofSerial = serial, 1
			if t.ixfr && first && an == 1 && i == 0 {
				return true, nil // up to date: a single SOA (RFC 1995 §2)
			}
		case typ != TypeSOA:
		case t.ixfr && serial != t.serial:
			t.incremental = true
		default:
			t.ofSerial++
			if !t.incremental && t.ofSerial == 2 || t.ofSerial == 3 {
				return true, nil
			}
		}
	}
	return false, nil
}

// soaSerial walks the record at off and returns its type, its serial if it
// is an SOA, and the offset past it.
func soaSerial(msg []byte, off int) (typ uint16, serial uint32, end int, ok bool) {
	nameEnd, _, ok := skipName(msg, off, endAtPointer)
	if !ok || nameEnd+10 > len(msg) {
		return 0, 0, 0, false
	}
	typ = binary.BigEndian.Uint16(msg[nameEnd:])
	rd := nameEnd + 10
	end = rd + int(binary.BigEndian.Uint16(msg[nameEnd+8:]))
	if end > len(msg) {
		return 0, 0, 0, false
	}
	if typ != TypeSOA {
		return typ, 0, end, true
	}
	p, _, ok := skipName(msg[:end], rd, endAtPointer) // MNAME
	if ok {
		p, _, ok = skipName(msg[:end], p, endAtPointer) // RNAME
	}
	if !ok || p+4 > end {
		return 0, 0, 0, false
	}
	return typ, binary.BigEndian.Uint32(msg[p:]), end, true
}
