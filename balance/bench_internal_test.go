package balance

import (
	"testing"
	"time"
)

// staticUpstream answers every query at once with the same bytes, so that a
// benchmark measures the Balancer alone.
type staticUpstream struct {
	name string
	ans  []byte
}

func (s *staticUpstream) Start(_ []byte, _ time.Time, done Done)     { done.ExchangeDone(s.ans, nil) }
func (s *staticUpstream) StartHeld(q []byte, d time.Time, done Done) { s.Start(q, d, done) }
func (s *staticUpstream) Flush()                                     {}
func (s *staticUpstream) InFlight() int                              { return 0 }
func (s *staticUpstream) String() string                             { return s.name }

func benchBalancer(b *testing.B, p Policy) *Balancer {
	b.Helper()
	ans := reply(testQuery, 0)
	ups := []*staticUpstream{{"u0", ans}, {"u1", ans}, {"u2", ans}}
	bal, err := New(members(ups), Config{Policy: p, MaxRetries: 2})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bal.Close() })
	return bal
}

// BenchmarkPick measures selection alone, from all cores at once.
func BenchmarkPick(b *testing.B) {
	for _, p := range Policies {
		b.Run(string(p), func(b *testing.B) {
			bal := benchBalancer(b, p)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					var tried uint64
					bal.choose(&tried)
				}
			})
		})
	}
}

// BenchmarkResolve measures a whole Resolve over upstreams that answer at
// once: selection plus the bookkeeping of one attempt. The deadline is a
// value: no attempt costs a context or a timer.
func BenchmarkResolve(b *testing.B) {
	for _, p := range []Policy{RoundRobin, LeastOutstanding, Fastest} {
		b.Run(string(p), func(b *testing.B) {
			bal := benchBalancer(b, p)
			deadline := time.Now().Add(time.Hour)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := bal.Resolve(testQuery, deadline); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
