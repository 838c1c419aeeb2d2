package route

import (
	"fmt"
	"strings"
)

// Bounds of a domain name in presentation form (RFC 1035 §2.3.4): 63
// octets a label, 253 characters a name without its trailing dot, which is
// 255 octets in wire form.
const (
	maxLabelLen = 63
	maxNameLen  = 253
)

// ParseSuffix reads a route's domain suffix, as written in a setting:
// dot-separated labels of ASCII letters, digits, '-' and '_', a trailing
// dot optional, such as corp.example or 168.192.in-addr.arpa. It returns it
// in lower case without the trailing dot, the form two suffixes are
// compared in. The root is refused: every name is under it, and the
// queries that no route takes go to the default resolver already. So are
// escapes and other bytes, which no zone an operator routes needs: an
// internationalised name is written in its xn-- form.
func ParseSuffix(s string) (string, error) {
	name := strings.TrimSuffix(s, ".")
	switch {
	case name == "":
		return "", fmt.Errorf("%w: the root (every name is under it; the default route takes what no route does)", ErrBadSuffix)
	case len(name) > maxNameLen:
		return "", fmt.Errorf("%w: longer than %d characters", ErrBadSuffix, maxNameLen)
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return "", fmt.Errorf("%w: empty label", ErrBadSuffix)
		case len(label) > maxLabelLen:
			return "", fmt.Errorf("%w: label %q longer than %d characters", ErrBadSuffix, label, maxLabelLen)
		}
		for i := 0; i < len(label); i++ {
			if !suffixByte(label[i]) {
				return "", fmt.Errorf("%w: %q in label %q: only letters, digits, '-' and '_' (an internationalised name in its xn-- form)",
					ErrBadSuffix, label[i], label)
			}
		}
	}
	return strings.ToLower(name), nil
}

func suffixByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// wireKey returns suffix, as ParseSuffix returns it, in the form a query's
// name is looked up in: wire form, each label after its length octet,
// without the root's zero octet; and its number of labels.
func wireKey(suffix string) (key string, labels int) {
	var b strings.Builder
	for label := range strings.SplitSeq(suffix, ".") {
		b.WriteByte(byte(len(label)))
		b.WriteString(label)
		labels++
	}
	return b.String(), labels
}
