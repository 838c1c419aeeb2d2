package ratelimit

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// FuzzKey checks the key of any address, as a socket could hand it over
// (IPv4, IPv6, IPv4-mapped, with a zone), under any prefix lengths,
// against netip's own masking: the key is the masked prefix, every
// address of that prefix has it, and Prefix names it.
func FuzzKey(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, 32, 64, "")
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 24, 64, "")
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}, 8, 128, "")
	f.Add([]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 1, 65, "eth0")
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 31, 1, "")
	f.Fuzz(func(t *testing.T, raw []byte, v4, v6 int, zone string) {
		var addr netip.Addr
		switch len(raw) {
		case 4:
			addr = netip.AddrFrom4([4]byte(raw))
		case 16:
			addr = netip.AddrFrom16([16]byte(raw)).WithZone(zone)
		default:
			return
		}
		v4 = 1 + abs(v4)%32
		v6 = 1 + abs(v6)%128
		l, err := New(Config{Rate: 1, IPv4Prefix: v4, IPv6Prefix: v6, Entries: 8})
		if err != nil {
			t.Fatal(err)
		}
		plain := addr.Unmap()
		bits := v6
		if plain.Is4() {
			bits = v4
		}
		want, err := plain.WithZone("").Prefix(bits)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Prefix(addr); got != want {
			t.Fatalf("Prefix(%s) = %s, want %s", addr, got, want)
		}
		k := l.keyOf(plain)
		w := want.Addr().As16()
		if k.hi != binary.BigEndian.Uint64(w[:8]) || k.lo != binary.BigEndian.Uint64(w[8:]) {
			t.Fatalf("key of %s /%d is %x %x, want %s", addr, bits, k.hi, k.lo, want)
		}
		// The last address of the prefix has the same key; the next
		// prefix's first address has another.
		last := lastOf(want)
		if l.keyOf(last) != k {
			t.Fatalf("%s, in %s, has another key than %s", last, want, addr)
		}
		if next := last.Next(); next.IsValid() && next.Is4() == plain.Is4() && l.keyOf(next) == k {
			t.Fatalf("%s, past %s, has its key", next, want)
		}
		// An IPv6 address never shares a key with an IPv4 one.
		if !plain.Is4() {
			m := netip.AddrFrom4([4]byte(w[12:]))
			if l.keyOf(m) == k {
				t.Fatalf("IPv6 %s has the key of IPv4 %s", addr, m)
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1) // -MinInt overflows
	}
	return n
}

// lastOf returns the last address of p.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	host := len(b)*8 - p.Bits()
	for i := len(b) - 1; host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Addresses in a row, as a network's clients have them, spread evenly over
// the sets: no set holds many more than its share.
func TestHashSpreadsSequentialPrefixes(t *testing.T) {
	l, err := New(Config{Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	nsets := len(l.sets)
	for _, family := range []string{"IPv4 /32", "IPv6 /64"} {
		load := make([]int, nsets)
		for i := range nsets * ways {
			var b [16]byte
			if family == "IPv4 /32" {
				b[10], b[11] = 0xff, 0xff
				binary.BigEndian.PutUint32(b[12:], 0x0a000000+uint32(i))
			} else {
				binary.BigEndian.PutUint64(b[:8], 0x20010db8_00000000+uint64(i))
			}
			load[l.hash(l.keyOf(netip.AddrFrom16(b).Unmap()))&l.setMask]++
		}
		most := 0
		for _, n := range load {
			most = max(most, n)
		}
		// Thrown at random, 65,536 keys into 8,192 sets of mean 8 load
		// the fullest with about 20; 32 would mean a skewed hash.
		if most > 32 {
			t.Errorf("%s: %d sequential prefixes put %d in one set (mean %d)", family, nsets*ways, most, ways)
		}
	}
}
