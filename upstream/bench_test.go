package upstream_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
)

// BenchmarkExchange measures one query through the pool to an echo server on
// loopback, with as many queries in flight as RunParallel's goroutines. The
// allocations include the echo server's, which makes none per query.
func BenchmarkExchange(b *testing.B) {
	srv := dottest.Start(b, dottest.Options{Echo: true})
	p, err := upstream.New(upstream.Config{
		Addr: srv.Addr, ServerName: "dns.test", RootCAs: srv.CA.Pool,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	q := query(b, "bench.example", 1)
	ctx := context.Background()
	if _, err := p.Exchange(ctx, q); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Exchange(ctx, q); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDirectDoT is the baseline for BenchmarkExchangeSerial: one
// client on one TLS connection, one query at a time, to the same echo server.
func BenchmarkDirectDoT(b *testing.B) {
	srv := dottest.Start(b, dottest.Options{Echo: true})
	c := srv.Dial(b)
	q := query(b, "bench.example", 1)
	ans := make([]byte, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := dottest.Exchange(c, q, ans); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExchangeSerial is BenchmarkDirectDoT through the pool: one query
// at a time, so that ns/op compares with the direct exchange.
func BenchmarkExchangeSerial(b *testing.B) {
	srv := dottest.Start(b, dottest.Options{Echo: true})
	p, err := upstream.New(upstream.Config{
		Addr: srv.Addr, ServerName: "dns.test", RootCAs: srv.CA.Pool,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	q := query(b, "bench.example", 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := p.Exchange(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}
