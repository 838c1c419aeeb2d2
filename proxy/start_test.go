package proxy_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// starting makes a Resolver a proxy.Starter. Its queries end in a goroutine
// of their own, as a balancer's do on an upstream connection's reader, or,
// with atOnce, before Start returns, as one does when the write upstream
// fails; with decline it starts none.
type starting struct {
	proxy.Resolver
	atOnce  bool
	decline bool
	started atomic.Int64
}

func (s *starting) Start(q []byte, deadline time.Time, fin proxy.Finisher) bool {
	if s.decline {
		return false
	}
	s.started.Add(1)
	if s.atOnce {
		fin.Resolved(s.Resolve(q, deadline))
		return true
	}
	go func() { fin.Resolved(s.Resolve(q, deadline)) }()
	return true
}

// forEachPath runs test with its resolver as it is (queries wait in
// Resolve) and made a Starter that ends queries later or at once: every
// path a UDP query can take through the proxy.
func forEachPath(t *testing.T, test func(t *testing.T, wrap func(proxy.Resolver) proxy.Resolver)) {
	t.Run("Resolve", func(t *testing.T) {
		test(t, func(r proxy.Resolver) proxy.Resolver { return r })
	})
	t.Run("Start", func(t *testing.T) {
		test(t, func(r proxy.Resolver) proxy.Resolver { return &starting{Resolver: r} })
	})
	t.Run("StartAtOnce", func(t *testing.T) {
		test(t, func(r proxy.Resolver) proxy.Resolver { return &starting{Resolver: r, atOnce: true} })
	})
}

// TestUDPQueriesGoThroughStart: a Starter resolver gets UDP queries through
// Start, and TCP ones through Resolve; one that declines gets them all
// through Resolve.
func TestUDPQueriesGoThroughStart(t *testing.T) {
	r := &starting{Resolver: &echoResolver{}}
	_, addr, _ := start(t, r, nil)
	for i, network := range []string{"udp", "udp", "tcp"} {
		if a := exchange(t, network, addr, msg("start.example", dns.TypeA, uint16(i))); a.Id != uint16(i) || len(a.Answer) != 1 {
			t.Fatalf("%s: %v", network, a)
		}
	}
	if got := r.started.Load(); got != 2 {
		t.Fatalf("started %d queries, want the 2 over UDP", got)
	}

	declining := &starting{Resolver: &echoResolver{}, decline: true}
	_, addr, obs := start(t, declining, nil)
	if a := exchange(t, "udp", addr, msg("declined.example", dns.TypeA, 9)); a.Id != 9 || len(a.Answer) != 1 {
		t.Fatalf("declined query: %v", a)
	}
	if s := obs.snapshot(); s.answered != 1 {
		t.Fatalf("answered = %d, want 1", s.answered)
	}
}
