package ratelimit_test

import (
	"errors"
	"math"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dotproxy/dotproxy/ratelimit"
)

// newLimiter returns a Limiter for cfg and the instant its clock starts
// from: the tests pass times after it, which is the clock they inject.
func newLimiter(t *testing.T, cfg ratelimit.Config) (*ratelimit.Limiter, time.Time) {
	t.Helper()
	l, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, time.Now()
}

var (
	clientA = netip.MustParseAddr("192.0.2.1")
	clientB = netip.MustParseAddr("192.0.2.2")
)

// take is Take for an unverified request, its verdict alone.
func take(l *ratelimit.Limiter, a netip.Addr, now time.Time) ratelimit.Verdict {
	v, _ := l.Take(a, now, false)
	return v
}

// allowed counts the requests of n taken from a at now.
func allowed(l *ratelimit.Limiter, a netip.Addr, now time.Time, n int, verified bool) int {
	got := 0
	for range n {
		if v, _ := l.Take(a, now, verified); v == ratelimit.Allow {
			got++
		}
	}
	return got
}

func TestZeroRateIsOff(t *testing.T) {
	l, err := ratelimit.New(ratelimit.Config{Burst: 5})
	if err != nil || l != nil {
		t.Fatalf("New with no rate = %v, %v; want nil, nil", l, err)
	}
	if got := allowed(l, clientA, time.Now(), 1000, false); got != 1000 {
		t.Fatalf("a nil Limiter allowed %d of 1000", got)
	}
}

// An address that is none, as a connection whose peer is not IP would
// give, is counted like any other, and harms nothing.
func TestInvalidAddress(t *testing.T) {
	l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("::/0")}})
	if got := allowed(l, netip.Addr{}, t0, 5, false); got != 2 {
		t.Fatalf("%d of 5 allowed, want 2", got)
	}
	if p := l.Prefix(netip.Addr{}); p.IsValid() {
		t.Fatalf("Prefix of no address: %s", p)
	}
}

// The bucket holds Burst requests and refills one every 1/Rate seconds,
// never past Burst, counted from the moment each was taken.
func TestBucketRefill(t *testing.T) {
	l, t0 := newLimiter(t, ratelimit.Config{Rate: 10, Burst: 5})
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	steps := []struct {
		at   time.Duration
		n    int // requests sent
		want int // of which allowed
	}{
		{0, 6, 5}, // the burst, then empty
		{99 * time.Millisecond, 1, 0},
		{100 * time.Millisecond, 2, 1}, // one interval: one token
		{350 * time.Millisecond, 3, 2}, // 2.5 intervals later: two
		{10 * time.Second, 9, 5},       // idle long: full, and no more
		{10*time.Second + 500*time.Millisecond, 9, 5},
	}
	for _, s := range steps {
		if got := allowed(l, clientA, at(s.at), s.n, false); got != s.want {
			t.Fatalf("at %v: %d of %d allowed, want %d", s.at, got, s.n, s.want)
		}
	}
	// Another client has a bucket of its own.
	if got := allowed(l, clientB, at(10*time.Second), 9, false); got != 5 {
		t.Fatalf("another client: %d of 9 allowed, want 5", got)
	}
}

// Over a long run a client sending far over its rate gets Burst plus Rate
// per second, to the request.
func TestSustainedRate(t *testing.T) {
	for _, tt := range []struct {
		rate  float64
		burst int
	}{{10, 5}, {0.5, 2}, {1000, 100}, {3, 7}} {
		l, t0 := newLimiter(t, ratelimit.Config{Rate: tt.rate, Burst: tt.burst})
		interval := time.Duration(math.Round(float64(time.Second) / tt.rate))
		const span = 20 * time.Second
		step := interval / 7 // seven requests an interval: always over
		got := 0
		var last time.Duration
		for d := time.Duration(0); d < span; d += step {
			if take(l, clientA, t0.Add(d)) == ratelimit.Allow {
				got++
			}
			last = d
		}
		if want := tt.burst + int(last/interval); got != want {
			t.Errorf("rate %v burst %d: %d allowed in %v, want %d", tt.rate, tt.burst, got, last, want)
		}
	}
}

// A verified request may overdraw by one more burst; what it overdraws,
// unverified requests then wait for, so the long-run rate is unchanged.
func TestVerifiedOverdrawsOneBurst(t *testing.T) {
	l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 3, Slip: 1})
	if got := allowed(l, clientA, t0, 4, false); got != 3 {
		t.Fatalf("%d of 4 unverified allowed, want 3", got)
	}
	if got := allowed(l, clientA, t0, 4, true); got != 3 {
		t.Fatalf("then %d of 4 verified allowed, want 3 more", got)
	}
	// Six charged at t0: full again at t0+6s. An unverified request
	// needs two tokens' room left below full: from t0+4s.
	if v := take(l, clientA, t0.Add(4*time.Second-time.Nanosecond)); v == ratelimit.Allow {
		t.Fatal("an unverified request was allowed while the overdraft lasted")
	}
	if v := take(l, clientA, t0.Add(4*time.Second)); v != ratelimit.Allow {
		t.Fatalf("an unverified request once the overdraft was paid: %v, want Allow", v)
	}
	// A verified-only sender gets two bursts, then the rate.
	got := 0
	for d := time.Duration(0); d < 10*time.Second; d += 100 * time.Millisecond {
		got += allowed(l, clientB, t0.Add(d), 1, true)
	}
	if want := 6 + 9; got != want {
		t.Fatalf("verified flood: %d allowed in 9.9 s, want %d", got, want)
	}
}

// Every Slip-th unverified request over the limit slips, starting with the
// first; verified requests never slip and do not move the count.
func TestSlipCadence(t *testing.T) {
	for _, tt := range []struct {
		slip int
		want string // S: slip, D: drop, for unverified requests over the limit; v: a verified one
	}{
		{0, "DDDDDD"},
		{1, "SSSSSS"},
		{2, "SDSDSD"},
		{3, "SDDSDD"},
		{2, "SvDSvD"},
	} {
		l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1, Slip: tt.slip})
		allowed(l, clientA, t0, 1, false)
		allowed(l, clientA, t0, 2, true) // the verified overdraft: one burst
		var b strings.Builder
		for _, c := range tt.want {
			v, _ := l.Take(clientA, t0, c == 'v')
			switch {
			case c == 'v' && v == ratelimit.Drop:
				b.WriteByte('v')
			case v == ratelimit.Slip:
				b.WriteByte('S')
			case v == ratelimit.Drop:
				b.WriteByte('D')
			default:
				b.WriteByte('?')
			}
		}
		if b.String() != tt.want {
			t.Errorf("slip %d: %s, want %s", tt.slip, b.String(), tt.want)
		}
	}
}

// Addresses share a bucket by prefix: IPv4 /32 and IPv6 /64 by default,
// or as configured; an IPv4-mapped address is its IPv4 address, and a zone
// changes nothing.
func TestPrefixes(t *testing.T) {
	tests := []struct {
		name       string
		v4, v6     int
		a, b       string
		sameBucket bool
		prefix     string // Prefix(a)
	}{
		{"IPv4 /32", 0, 0, "10.0.0.1", "10.0.0.2", false, "10.0.0.1/32"},
		{"IPv6 /64", 0, 0, "2001:db8::1", "2001:db8::ffff:1", true, "2001:db8::/64"},
		{"IPv6 next /64", 0, 0, "2001:db8::1", "2001:db8:0:1::1", false, "2001:db8::/64"},
		{"mapped is IPv4", 0, 0, "::ffff:10.0.0.1", "10.0.0.1", true, "10.0.0.1/32"},
		{"mapped is not IPv6 ::/64", 0, 0, "::ffff:10.0.0.1", "::1", false, "10.0.0.1/32"},
		{"zone", 0, 0, "fe80::1%eth0", "fe80::2", true, "fe80::/64"},
		{"IPv4 /24", 24, 0, "10.0.0.1", "10.0.0.200", true, "10.0.0.0/24"},
		{"IPv4 /24 next", 24, 0, "10.0.0.1", "10.0.1.1", false, "10.0.0.0/24"},
		{"IPv4 /1", 1, 0, "10.0.0.1", "127.255.0.1", true, "0.0.0.0/1"},
		{"IPv6 /128", 0, 128, "2001:db8::1", "2001:db8::2", false, "2001:db8::1/128"},
		{"IPv6 /48", 0, 48, "2001:db8:0:1::1", "2001:db8:0:ffff::1", true, "2001:db8::/48"},
		{"IPv6 /56", 0, 56, "2001:db8:0:ff::1", "2001:db8:0:100::1", false, "2001:db8:0::/56"},
		{"IPv6 /65", 0, 65, "2001:db8::1", "2001:db8::7fff:0:0:1", true, "2001:db8::/65"},
		{"IPv6 /65 upper half", 0, 65, "2001:db8::1", "2001:db8::8000:0:0:1", false, "2001:db8::/65"},
		{"IPv6 /1", 0, 1, "2001:db8::1", "7fff::1", true, "::/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1, IPv4Prefix: tt.v4, IPv6Prefix: tt.v6})
			a, b := netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b)
			if take(l, a, t0) != ratelimit.Allow {
				t.Fatal("the first request was not allowed")
			}
			shared := take(l, b, t0) != ratelimit.Allow
			if shared != tt.sameBucket {
				t.Fatalf("%s after %s: shares its bucket %v, want %v", tt.b, tt.a, shared, tt.sameBucket)
			}
			if got := l.Prefix(a); got != netip.MustParsePrefix(tt.prefix) {
				t.Fatalf("Prefix(%s) = %s, want %s", a, got, tt.prefix)
			}
		})
	}
}

// Exempt networks are never limited, whichever way their addresses come.
func TestExempt(t *testing.T) {
	l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1, Exempt: []netip.Prefix{
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("2001:db8:1::/48"),
		netip.MustParsePrefix("::ffff:203.0.113.0/120"), // written as IPv6, it means 203.0.113.0/24
		netip.MustParsePrefix("fe80::/10"),
	}})
	for _, a := range []string{"198.51.100.7", "::ffff:198.51.100.7", "2001:db8:1:2::3", "203.0.113.9", "::ffff:203.0.113.9",
		"fe80::1%eth0"} { // as a socket gives a link-local source
		if got := allowed(l, netip.MustParseAddr(a), t0, 1000, false); got != 1000 {
			t.Errorf("exempt %s: %d of 1000 allowed", a, got)
		}
	}
	for _, a := range []string{"198.51.101.7", "2001:db8:2::3"} {
		if got := allowed(l, netip.MustParseAddr(a), t0, 1000, false); got != 1 {
			t.Errorf("%s, not exempt: %d of 1000 allowed, want 1", a, got)
		}
	}
}

// A prefix over its limit is reported once per ReportInterval, and no more
// than ten prefixes an interval are reported; Unreported counts the rest.
func TestReports(t *testing.T) {
	l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1})
	reports := func(a netip.Addr, now time.Time, n int) int {
		got := 0
		for range n {
			if _, r := l.Take(a, now, false); r {
				got++
			}
		}
		return got
	}
	if got := reports(clientA, t0, 100); got != 1 {
		t.Fatalf("%d reports for one prefix at once, want 1", got)
	}
	if got := reports(clientA, t0.Add(ratelimit.ReportInterval-time.Second), 100); got != 0 {
		t.Fatalf("%d more reports within the interval, want none", got)
	}
	t1 := t0.Add(ratelimit.ReportInterval)
	if got := reports(clientA, t1, 100); got != 1 {
		t.Fatalf("%d reports once the interval passed, want 1", got)
	}
	// Fifty prefixes over the limit at once: the table's pace allows
	// ten an interval, and the first report above was one of them.
	total := 0
	for i := range 50 {
		total += reports(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), t1, 5)
	}
	if total != 9 {
		t.Fatalf("%d of 50 prefixes reported at once, want 9", total)
	}
	if n := l.Unreported(); n != 41 {
		t.Fatalf("Unreported() = %d, want 41", n)
	}
	if n := l.Unreported(); n != 0 {
		t.Fatalf("Unreported() again = %d, want 0", n)
	}
	// A prefix held back is not due again before its interval ends.
	if got := reports(netip.AddrFrom4([4]byte{10, 0, 0, 49}), t1.Add(ratelimit.ReportInterval/2), 5); got != 0 {
		t.Fatalf("a held-back prefix was reported within its interval")
	}
}

// A spoofed flood, one request from each of a million sources (a hundred
// thousand under the race detector), leaves a prefix that sends over its
// limit limited: it keeps its entry, its bucket still empty, where a table
// that gave way by age, or to the fullest bucket alone, would forget it
// every few sources and hand it a new burst each time. Both with a table of
// one set, which every source shares, the prefix over its limit before the
// flood came; and with the default table, the prefix starting with the
// flood. Either holds with a burst of one, where a newcomer's bucket is as
// low as the heavy hitter's and only how hard it presses tells them apart.
func TestHeavyHitterOutlastsSpoofedFlood(t *testing.T) {
	for _, tt := range []struct {
		name    string
		entries int
		ahead   int // requests the heavy hitter sends before the flood
	}{
		{"one set", 8, 10},
		{"default table", 0, 0},
	} {
		for _, burst := range []int{1, 5} {
			l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: burst, Entries: tt.entries})
			heavy := netip.MustParseAddr("2001:db8::1")
			got := allowed(l, heavy, t0, tt.ahead, false)
			sources := 1_000_000 // one a microsecond: one second
			if raceEnabled {
				sources = 100_000
			}
			for i := range sources {
				now := t0.Add(time.Duration(i) * time.Microsecond)
				take(l, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
				if i%100 == 0 && take(l, heavy, now) == ratelimit.Allow {
					got++
				}
			}
			if got > burst {
				t.Errorf("%s, burst %d: the heavy hitter got %d of %d through, want at most %d",
					tt.name, burst, got, tt.ahead+sources/100, burst)
			}
		}
	}
}

// Concurrent requests are each charged once: at one instant, however many
// goroutines take from a few prefixes, each prefix allows exactly Burst.
func TestConcurrentTake(t *testing.T) {
	const burst, prefixes, goroutines, each = 100, 16, 8, 1000
	l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: burst})
	var mu sync.Mutex
	counts := map[netip.Addr]int{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			mine := map[netip.Addr]int{}
			for i := range each {
				a := netip.AddrFrom4([4]byte{10, 0, 0, byte((g + i) % prefixes)})
				if take(l, a, t0) == ratelimit.Allow {
					mine[a]++
				}
			}
			mu.Lock()
			for a, n := range mine {
				counts[a] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := range prefixes {
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		if counts[a] != burst {
			t.Errorf("%s: %d allowed, want %d", a, counts[a], burst)
		}
	}
}

// Take reads the time it is given: with the real clock, here a synctest
// bubble's, a bucket drained now has a token one interval later.
func TestTakeOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, _ := newLimiter(t, ratelimit.Config{Rate: 4, Burst: 2})
		if got := allowed(l, clientA, time.Now(), 3, false); got != 2 {
			t.Fatalf("%d of 3 allowed, want 2", got)
		}
		time.Sleep(249 * time.Millisecond)
		if got := allowed(l, clientA, time.Now(), 1, false); got != 0 {
			t.Fatal("a token before its interval")
		}
		time.Sleep(time.Millisecond)
		if got := allowed(l, clientA, time.Now(), 2, false); got != 1 {
			t.Fatalf("%d of 2 allowed after one interval, want 1", got)
		}
	})
}

// A spoofed flood leaves memory flat: millions of distinct prefixes, IPv4
// and IPv6, go through a table of fixed size, which the first Take found
// allocated and the last leaves the same size.
func TestSpoofedFloodLeavesMemoryFlat(t *testing.T) {
	n := 1 << 22
	if testing.Short() || raceEnabled {
		n = 1 << 16
	}
	l, t0 := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1})
	size := l.Config().Entries
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for i := range n {
		now := t0.Add(time.Duration(i) * time.Microsecond)
		take(l, netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), now)
		var a16 [16]byte
		a16[0], a16[1], a16[4], a16[5], a16[6], a16[7] = 0x20, 0x01, byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		take(l, netip.AddrFrom16(a16), now)
	}
	after := heap()
	if l.Config().Entries != size {
		t.Fatalf("the table went from %d to %d entries", size, l.Config().Entries)
	}
	if after > before && after-before > 256<<10 {
		t.Fatalf("the heap grew by %d KiB over %d sources", (after-before)>>10, 2*n)
	}
	t.Logf("%d sources: heap %d KiB before, %d KiB after; table %d entries", 2*n, before>>10, after>>10, size)
}

// Each bad field is refused, named in the error.
func TestValidateNamesTheField(t *testing.T) {
	tests := []struct {
		cfg   ratelimit.Config
		field string
	}{
		{ratelimit.Config{Rate: -1}, "Rate"},
		{ratelimit.Config{Rate: 0.001}, "Rate"},
		{ratelimit.Config{Rate: 2e6}, "Rate"},
		{ratelimit.Config{Rate: math.NaN()}, "Rate"},
		{ratelimit.Config{Rate: math.Inf(1)}, "Rate"},
		{ratelimit.Config{Rate: 1, Burst: -1}, "Burst"},
		{ratelimit.Config{Rate: 1, Burst: ratelimit.MaxBurst + 1}, "Burst"},
		{ratelimit.Config{Rate: 1, Slip: -1}, "Slip"},
		{ratelimit.Config{Rate: 1, Slip: ratelimit.MaxSlip + 1}, "Slip"},
		{ratelimit.Config{Rate: 1, IPv4Prefix: 33}, "IPv4Prefix"},
		{ratelimit.Config{Rate: 1, IPv4Prefix: -1}, "IPv4Prefix"},
		{ratelimit.Config{Rate: 1, IPv6Prefix: 129}, "IPv6Prefix"},
		{ratelimit.Config{Rate: 1, Entries: -8}, "Entries"},
		{ratelimit.Config{Rate: 1, Exempt: []netip.Prefix{{}}}, "Exempt"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if !errors.Is(err, ratelimit.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
			t.Errorf("%+v: %v, want an error naming %s", tt.cfg, err, tt.field)
		}
		if _, err := ratelimit.New(tt.cfg); err == nil {
			t.Errorf("New(%+v) took it", tt.cfg)
		}
	}
	for _, ok := range []ratelimit.Config{
		{}, {Rate: ratelimit.MinRate}, {Rate: ratelimit.MaxRate, Burst: ratelimit.MaxBurst},
		{Rate: 1, IPv4Prefix: 32, IPv6Prefix: 128, Slip: ratelimit.MaxSlip, Entries: 1},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}
