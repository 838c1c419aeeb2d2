package upstream_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
)

// newBenchPool returns a pool to an echo server on loopback.
func newBenchPool(b *testing.B) *upstream.Pool {
	b.Helper()
	srv := dottest.Start(b, dottest.Options{Echo: true})
	p, err := upstream.New(upstream.Config{
		Addr: srv.Addr, ServerName: "dns.test", RootCAs: srv.CA.Pool,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// BenchmarkExchange measures one query through the pool to an echo server on
// loopback, with as many queries in flight as RunParallel's goroutines. The
// allocations include the echo server's, which makes none per query.
func BenchmarkExchange(b *testing.B) {
	p := newBenchPool(b)
	q := query(b, "bench.example", 1)
	if _, err := p.Exchange(q, within(time.Minute)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Exchange(q, within(time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkExchangeSerial sends one query at a time through the pool, so
// that ns/op compares with the root package's BenchmarkDirectDoT, the same
// exchange made straight over one TLS connection.
func BenchmarkExchangeSerial(b *testing.B) {
	p := newBenchPool(b)
	q := query(b, "bench.example", 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := p.Exchange(q, within(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}
