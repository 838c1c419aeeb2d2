package upstream

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// FuzzReadFrame reads a server's TLS stream after decryption: whatever a
// server sends, frames come out with the length they announced, or the read
// fails.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 12, 1, 2, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0})
	f.Add([]byte{0xFF, 0xFF, 1})
	f.Fuzz(func(t *testing.T, stream []byte) {
		src := bytes.NewReader(stream)
		r := bufio.NewReader(src)
		left := func() int { return src.Len() + r.Buffered() }
		for range 100 {
			before := left()
			msg, err := readFrame(r, dnsmsg.MaxCleanGrowth)
			if err != nil {
				return
			}
			if cap(msg) != len(msg)+dnsmsg.MaxCleanGrowth {
				t.Fatalf("frame of %d bytes has capacity %d, want room for CleanAnswer", len(msg), cap(msg))
			}
			if before-left() != len(msg)+2 {
				t.Fatalf("frame of %d bytes consumed %d", len(msg), before-left())
			}
		}
	})
}

// FuzzParseSpec reads operator input: never a panic, and whatever parses
// reads back the same through String.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"1.1.1.1", "[::1]:853#dns.test", "dns.google:853", "a#b", "[", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err != nil {
			return
		}
		again, err := ParseSpec(spec.String())
		if err != nil || again != spec {
			t.Fatalf("%q parsed as %+v, which reads back as %+v (%v)", s, spec, again, err)
		}
	})
}
