package dnsmsg

import (
	"encoding/binary"
	"errors"
)

// HeaderLen is the size of the fixed DNS header (RFC 1035 §4.1.1).
const HeaderLen = 12

// MinUDPSize is the largest answer every UDP client accepts (RFC 1035 §2.3.4).
const MinUDPSize = 512

// Header flag bits, in the 16-bit flags word.
const (
	flagQR     = 1 << 15
	flagTC     = 1 << 9
	flagRD     = 1 << 8
	flagCD     = 1 << 4
	opcodeMask = 0xF << 11
	rcodeMask  = 0xF
)

// Response codes used by the proxy's own replies (RFC 1035 §4.1.1).
const (
	RcodeSuccess  = 0
	RcodeFormErr  = 1
	RcodeServFail = 2
	RcodeNXDomain = 3
	RcodeNotImp   = 4
	RcodeRefused  = 5
)

var (
	// ErrShort reports a message shorter than a DNS header.
	ErrShort = errors.New("dnsmsg: message shorter than a DNS header")
	// ErrNotQuery reports a message with the QR (response) bit set where a
	// query was expected.
	ErrNotQuery = errors.New("dnsmsg: QR bit set in a query")
	// ErrMalformed reports a message whose sections do not parse.
	ErrMalformed = errors.New("dnsmsg: malformed message")
)

// ID returns the message ID. msg must hold at least two bytes.
func ID(msg []byte) uint16 { return binary.BigEndian.Uint16(msg) }

// SetID overwrites the message ID in place. msg must hold at least two bytes.
func SetID(msg []byte, id uint16) { binary.BigEndian.PutUint16(msg, id) }

// Rcode returns the (non-extended) response code of a message of at least
// HeaderLen bytes.
func Rcode(msg []byte) int { return int(binary.BigEndian.Uint16(msg[2:]) & rcodeMask) }

// IsResponse reports whether the QR bit is set in a message of at least
// HeaderLen bytes.
func IsResponse(msg []byte) bool { return binary.BigEndian.Uint16(msg[2:])&flagQR != 0 }

// RcodeName returns the mnemonic of a response code, as used in metric tags.
func RcodeName(rcode int) string {
	if rcode >= 0 && rcode < len(rcodeNames) {
		return rcodeNames[rcode]
	}
	return "RCODE_OTHER"
}

var rcodeNames = [...]string{
	"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "DSOTYPENI",
	"RCODE12", "RCODE13", "RCODE14", "RCODE15",
}
