//go:build unix

package main

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/internal/dottest"
)

// These benchmarks time what a client waits for while every upstream is
// down: the SERVFAIL it gets, and, once the upstream is back, its first
// answer. They run the whole proxy with its defaults (DOTPROXY_QUERY_TIMEOUT
// 4 s) in front of one upstream that cannot be reached, in two ways:
//
//   - blackhole: a TCP listener that accepts and never says a word, as a
//     resolver behind a dead TLS terminator, or a firewall that accepts and
//     drops; every connection waits out DOTPROXY_UPSTREAM_HANDSHAKE_TIMEOUT.
//   - refused: a closed port, which refuses each connection at once.
//
// Each op is one query, sent after the outage has been noticed and probed
// (allDownSettle); the first query, which finds the upstream up, is
// reported apart as first-ms. Run with a fixed count, since each op may take
// seconds:
//
//	go test -run '^$' -bench 'AllDown' -benchtime 5x .

// allDownSettle is how long the benchmarks wait after the first query
// before they time the next ones: long enough for the upstream to be marked
// down and for its first probes (100 ms after, each failing by
// DOTPROXY_PROBE_TIMEOUT, 2 s) to have failed.
const allDownSettle = 5 * time.Second

// blackhole listens on loopback, accepts every connection and holds it open
// without reading or writing, until stop is called or the benchmark ends.
func blackhole(b *testing.B) (addr string, stop func()) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ln.Close()
			<-done
			mu.Lock()
			for _, c := range held {
				c.Close()
			}
			mu.Unlock()
		})
	}
	b.Cleanup(stop)
	return ln.Addr().String(), stop
}

// refusedAddr returns a loopback address where nothing listens.
func refusedAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// rcodeClient sends one query at a time over UDP and returns the rcode of
// the reply.
type rcodeClient struct{ *udpClient }

func (c rcodeClient) ask(b *testing.B) (int, time.Duration) {
	b.Helper()
	start := time.Now()
	if _, err := c.c.Write(c.q); err != nil {
		b.Fatal(err)
	}
	// Far beyond DOTPROXY_QUERY_TIMEOUT: the proxy answers every query.
	c.c.SetReadDeadline(start.Add(30 * time.Second))
	n, err := c.c.Read(c.ans)
	if err != nil {
		b.Fatal(err)
	}
	if n < dnsmsg.HeaderLen || dnsmsg.ID(c.ans) != 0x1234 {
		b.Fatalf("bad reply %x", c.ans[:n])
	}
	return dnsmsg.Rcode(c.ans), time.Since(start)
}

// BenchmarkServFailAllDown: ns/op is the time from a query to its SERVFAIL
// while the only upstream is down, after the outage was noticed.
func BenchmarkServFailAllDown(b *testing.B) {
	for _, tt := range []struct {
		name string
		addr func(b *testing.B) string
	}{
		{"blackhole", func(b *testing.B) string { a, _ := blackhole(b); return a }},
		{"refused", refusedAddr},
	} {
		b.Run(tt.name, func(b *testing.B) {
			addr, _ := startBenchProxy(b, map[string]string{"DOTPROXY_UPSTREAMS": tt.addr(b) + "#dns.test"})
			c := rcodeClient{newUDPClient(b, addr)}
			rcode, first := c.ask(b)
			if rcode != dnsmsg.RcodeServFail {
				b.Fatalf("first reply %s, want SERVFAIL", dnsmsg.RcodeName(rcode))
			}
			time.Sleep(allDownSettle)
			waits := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				rcode, d := c.ask(b)
				if rcode != dnsmsg.RcodeServFail {
					b.Fatalf("reply %s, want SERVFAIL", dnsmsg.RcodeName(rcode))
				}
				waits = append(waits, d)
			}
			b.StopTimer()
			slices.Sort(waits)
			b.ReportMetric(float64(first.Milliseconds()), "first-ms")
			b.ReportMetric(float64(waits[0].Microseconds())/1e3, "min-ms")
			b.ReportMetric(float64(waits[len(waits)/2].Microseconds())/1e3, "p50-ms")
			b.ReportMetric(float64(waits[len(waits)-1].Microseconds())/1e3, "max-ms")
		})
	}
}

// BenchmarkRecoveryAllDown: the blackholed upstream has been down for
// longer than it takes its probes' backoff to reach its cap; then a working
// resolver takes its address. ns/op is the time from then to the first
// NOERROR a client asking every 10 ms gets.
func BenchmarkRecoveryAllDown(b *testing.B) {
	var worst time.Duration
	for range b.N {
		b.StopTimer()
		hole, stop := blackhole(b)
		addr, srv := startBenchProxy(b, map[string]string{"DOTPROXY_UPSTREAMS": hole + "#dns.test"})
		c := rcodeClient{newUDPClient(b, addr)}
		c.ask(b)
		// Probes at 0.1, 0.3, 0.7, 1.5, 3.1 and 6.3 s after the outage
		// was noticed, each failing 2 s later at most: past 20 s the
		// wait between probes is DOTPROXY_PROBE_MAX_BACKOFF's.
		time.Sleep(20 * time.Second)
		stop()
		leaf := srv.CA.Leaf(b, "dns.test", "127.0.0.1")
		b.StartTimer()
		back := time.Now()
		dottest.Start(b, dottest.Options{Addr: hole, Cert: &leaf})
		for asked := 0; ; asked++ {
			if rcode, _ := c.ask(b); rcode == dnsmsg.RcodeSuccess {
				break
			}
			if asked == 10000 { // 100 s: far past any probe
				b.Fatal("no answer after the upstream came back")
			}
			time.Sleep(10 * time.Millisecond)
		}
		worst = max(worst, time.Since(back))
	}
	b.ReportMetric(float64(worst.Milliseconds()), "max-ms")
}
