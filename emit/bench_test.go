package emit_test

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/proxy"
)

// BenchmarkObserver measures what one answered query costs the query path:
// the proxy's Answered and the upstream's Exchanged, from parallel
// goroutines, with metrics off and in each format.
func BenchmarkObserver(b *testing.B) {
	clearDD(b)
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	go func() { // drain, as a statsd server would
		buf := make([]byte, 65536)
		for {
			if _, _, err := srv.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	for _, bc := range []struct {
		name string
		cfg  emit.Config
	}{
		{"off", emit.Config{}},
		{"dogstatsd", emit.Config{Addr: srv.LocalAddr().String(), Tags: []string{"env:bench"}}},
		{"statsd", emit.Config{Addr: srv.LocalAddr().String(), Format: emit.StatsD}},
	} {
		bc.cfg.Logger = slog.New(slog.DiscardHandler)
		b.Run(bc.name, func(b *testing.B) {
			e := newEmitter(b, bc.cfg)
			p, u := e.Proxy(), e.Upstream(google)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u.Exchanged(3*time.Millisecond, 40, 120)
					p.Answered(proxy.UDP, u, 0, 4*time.Millisecond, 40, 120) // the identity serve wires: no lookup by name
				}
			})
		})
	}
}
