package dnsmsg

import (
	"errors"
	"strings"
)

// Padding is the padding policy for queries sent upstream, as an operator
// names it: [PadBlock] or [PadOff]. [Padding.Block] turns it into
// [Rewrite.PadBlock].
type Padding string

// The padding policies.
const (
	// PadBlock pads every query to a multiple of 128 bytes, the block
	// length that RFC 8467 §4.1 recommends for queries, so that the length
	// of the encrypted record does not give the name away.
	PadBlock Padding = "block"
	// PadOff sends queries unpadded.
	PadOff Padding = "off"
)

// queryBlock is the block length RFC 8467 §4.1 recommends for queries.
const queryBlock = 128

// UnmarshalText implements [encoding.TextUnmarshaler], ignoring case, so
// that an unknown policy is refused where it is read rather than sending
// queries unpadded.
func (p *Padding) UnmarshalText(text []byte) error {
	switch v := Padding(strings.ToLower(string(text))); v {
	case PadBlock, PadOff:
		*p = v
	default:
		return errors.New("unknown padding (allowed: block, off)")
	}
	return nil
}

// Block returns the block length to pad queries to, for
// [Rewrite.PadBlock]: 128 for [PadBlock], and zero, no padding, for any
// other value.
func (p Padding) Block() int {
	if p == PadBlock {
		return queryBlock
	}
	return 0
}
