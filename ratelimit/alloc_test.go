//go:build !race

// The race detector instruments memory accesses and allocates for its own
// bookkeeping, so allocation counts mean something only without it.

package ratelimit_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/ratelimit"
)

// TestTakeAllocations pins the limiter's cost per query at no allocation,
// on every path: allowed, dropped, slipped, reported, exempt, a new prefix
// taking an entry's place, IPv4 and IPv6.
func TestTakeAllocations(t *testing.T) {
	l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1, Slip: 2, Entries: 8,
		Exempt: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	v6 := netip.MustParseAddr("2001:db8::1")
	exempt := netip.MustParseAddr("198.51.100.1")
	i := 0
	take := func() {
		i++
		now := t0.Add(time.Duration(i) * time.Minute) // a report due each time
		fresh := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		for range 3 { // allowed, then slipped, dropped
			l.Take(fresh, now, false)
			l.Take(v6, now, true)
		}
		l.Take(exempt, now, false)
		l.Unreported()
		l.Prefix(fresh)
	}
	if n := testing.AllocsPerRun(1000, take); n != 0 {
		t.Fatalf("%v allocations per round of Take", n)
	}
}
