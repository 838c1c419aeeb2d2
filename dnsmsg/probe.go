package dnsmsg

import (
	"encoding/binary"
	"errors"
	"strings"
)

// ErrBadName reports a domain name that cannot be written as a question.
var ErrBadName = errors.New("dnsmsg: bad domain name")

// TypeNS is the NS record type (RFC 1035 §3.2.2).
const TypeNS = 2

const classIN = 1

// NewQuery builds a recursive query (RD set) for name, in presentation form
// ("." for the root, a trailing dot optional), with the given type, class IN
// and the given ID. It serves the proxy's own queries, such as health
// probes; escapes in names are not supported.
func NewQuery(id uint16, name string, qtype uint16) ([]byte, error) {
	msg := make([]byte, HeaderLen, HeaderLen+len(name)+2+4)
	binary.BigEndian.PutUint16(msg[0:], id)
	binary.BigEndian.PutUint16(msg[2:], flagRD)
	binary.BigEndian.PutUint16(msg[4:], 1)
	msg, err := appendName(msg, name)
	if err != nil {
		return nil, err
	}
	msg = binary.BigEndian.AppendUint16(msg, qtype)
	return binary.BigEndian.AppendUint16(msg, classIN), nil
}

// appendName writes name as a sequence of uncompressed labels.
func appendName(msg []byte, name string) ([]byte, error) {
	name = strings.TrimSuffix(name, ".")
	if strings.ContainsRune(name, '\\') || len(name) > 253 {
		return nil, ErrBadName
	}
	if name != "" {
		for label := range strings.SplitSeq(name, ".") {
			if label == "" || len(label) > 63 {
				return nil, ErrBadName
			}
			msg = append(msg, byte(len(label)))
			msg = append(msg, label...)
		}
	}
	return append(msg, 0), nil
}
