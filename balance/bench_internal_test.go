package balance

import (
	"context"
	"testing"
	"time"
)

// staticUpstream answers every query at once with the same bytes, so that a
// benchmark measures the Balancer alone.
type staticUpstream struct {
	name string
	ans  []byte
}

func (s *staticUpstream) Exchange(context.Context, []byte) ([]byte, error) { return s.ans, nil }
func (s *staticUpstream) String() string                                   { return s.name }

func benchBalancer(b *testing.B, p Policy) *Balancer {
	b.Helper()
	ans := reply(testQuery, 0)
	ups := []Upstream{
		&staticUpstream{"u0", ans}, &staticUpstream{"u1", ans}, &staticUpstream{"u2", ans},
	}
	bal, err := New(ups, Config{Policy: p, MaxRetries: 2})
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
// once: selection plus the bookkeeping of one attempt. With a deadline, the
// attempt's share of it costs a context.
func BenchmarkResolve(b *testing.B) {
	for _, deadline := range []bool{false, true} {
		name := "no_deadline"
		if deadline {
			name = "deadline"
		}
		for _, p := range []Policy{RoundRobin, LeastOutstanding, Fastest} {
			b.Run(name+"/"+string(p), func(b *testing.B) {
				bal := benchBalancer(b, p)
				ctx := context.Background()
				if deadline {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Hour)
					defer cancel()
				}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, _, err := bal.Resolve(ctx, testQuery); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
