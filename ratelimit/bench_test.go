package ratelimit_test

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/ratelimit"
)

// BenchmarkTake is the limiter's cost per query, from parallel goroutines
// as the proxy's UDP readers and TCP connections call it: "clients" spreads
// the queries over 65,536 prefixes, within their limit; "one client" sends
// them all from one prefix, which every goroutine's Take then locks in
// turn; "over the limit" is a flood the limiter refuses.
func BenchmarkTake(b *testing.B) {
	for _, bc := range []struct {
		name    string
		clients int
		rate    float64
		burst   int
	}{
		{"clients", 1 << 16, ratelimit.MaxRate, ratelimit.MaxBurst},
		{"one client", 1, ratelimit.MaxRate, ratelimit.MaxBurst},
		{"over the limit", 1 << 16, ratelimit.MinRate, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := ratelimit.New(ratelimit.Config{Rate: bc.rate, Burst: bc.burst})
			if err != nil {
				b.Fatal(err)
			}
			addrs := make([]netip.Addr, bc.clients)
			for i := range addrs {
				addrs[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			}
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(7919) // each goroutine its own walk
				now := time.Now()
				for pb.Next() {
					i++
					l.Take(addrs[i%uint64(len(addrs))], now, false)
				}
			})
		})
	}
}
