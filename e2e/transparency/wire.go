package main

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"time"
)

const (
	flagQR  = 0x8000
	flagTC  = 0x0200
	typeOPT = 41
)

// skipName returns the offset just past the (possibly compressed) name at
// off.
func skipName(m []byte, off int) (int, bool) {
	for n := 0; n < 128; n++ {
		if off >= len(m) {
			return 0, false
		}
		l := int(m[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0:
			if off+2 > len(m) {
				return 0, false
			}
			return off + 2, true
		case l&0xC0 != 0:
			return 0, false
		}
		off += l + 1
	}
	return 0, false
}

func skipRR(m []byte, off int) (int, bool) {
	end, ok := skipName(m, off)
	if !ok || end+10 > len(m) {
		return 0, false
	}
	end += 10 + int(binary.BigEndian.Uint16(m[end+8:]))
	return end, end <= len(m)
}

// findOPT returns the bounds of the first OPT record in m's additional
// section.
func findOPT(m []byte) (start, end int, ok bool) {
	if len(m) < 12 {
		return 0, 0, false
	}
	qd := int(binary.BigEndian.Uint16(m[4:]))
	rr := int(binary.BigEndian.Uint16(m[6:])) + int(binary.BigEndian.Uint16(m[8:]))
	ar := int(binary.BigEndian.Uint16(m[10:]))
	off := 12
	for i := 0; i < qd; i++ {
		end, ok := skipName(m, off)
		if !ok || end+4 > len(m) {
			return 0, 0, false
		}
		off = end + 4
	}
	for i := 0; i < rr; i++ {
		if off, ok = skipRR(m, off); !ok {
			return 0, 0, false
		}
	}
	for i := 0; i < ar; i++ {
		s := off
		if off, ok = skipRR(m, off); !ok {
			return 0, 0, false
		}
		if m[s] == 0 && binary.BigEndian.Uint16(m[s+1:]) == typeOPT {
			return s, off, true
		}
	}
	return 0, 0, false
}

// withoutOptions returns a copy of m whose OPT record lacks the options
// with the given codes, or m itself when there is nothing to remove.
func withoutOptions(m []byte, codes ...uint16) []byte {
	s, e, ok := findOPT(m)
	if !ok {
		return m
	}
	rdStart := s + 11
	var kept []byte
	removed := false
	for o := rdStart; o+4 <= e; {
		code := binary.BigEndian.Uint16(m[o:])
		n := 4 + int(binary.BigEndian.Uint16(m[o+2:]))
		if o+n > e {
			return m
		}
		drop := false
		for _, c := range codes {
			drop = drop || c == code
		}
		if drop {
			removed = true
		} else {
			kept = append(kept, m[o:o+n]...)
		}
		o += n
	}
	if !removed {
		return m
	}
	out := append([]byte(nil), m[:rdStart]...)
	binary.BigEndian.PutUint16(out[rdStart-2:], uint16(len(kept)))
	out = append(out, kept...)
	return append(out, m[e:]...)
}

func withID(wire []byte, id uint16) []byte {
	m := append([]byte(nil), wire...)
	if len(m) >= 2 {
		binary.BigEndian.PutUint16(m, id)
	}
	return m
}

// exchangeUDP sends msg to addr and returns the first datagram that
// carries msg's ID, or nil after timeout.
func exchangeUDP(addr string, msg []byte, timeout time.Duration) ([]byte, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if n >= 2 && len(msg) >= 2 && buf[0] == msg[0] && buf[1] == msg[1] {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

// exchangeTCP sends msg, length-prefixed, on a new connection to addr and
// returns the first message that comes back, or nil after timeout or when
// the server closes the connection first.
func exchangeTCP(addr string, msg []byte, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	framed := make([]byte, 2, 2+len(msg))
	binary.BigEndian.PutUint16(framed, uint16(len(msg)))
	if _, err := c.Write(append(framed, msg...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	out := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, out); err != nil {
		return nil, errors.Join(errors.New("answer cut short"), err)
	}
	return out, nil
}
