package balance

import (
	"errors"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
)

// route names a Balancer in the Unanswered tests.
type route string

func (r route) String() string { return string(r) }

// A query that no upstream answered ends with Config.Unanswered as its
// upstream, whether every attempt failed, with hedging or without, or the
// deadline had passed before the first; without it, with none. A zone
// transfer that none passed on returns it too.
func TestUnansweredNamesTheBalancer(t *testing.T) {
	for _, cfg := range []Config{
		{Policy: Failover, MaxRetries: 1, Unanswered: route("corp")},
		{Policy: Failover, MaxRetries: 1, HedgeAfter: time.Hour, Unanswered: route("corp")},
		{Policy: Failover, MaxRetries: 1},
	} {
		b, _ := newStartingBalancer(t, cfg, nil, refuse, refuse)
		for _, deadline := range []time.Time{far(), time.Now().Add(-time.Second)} {
			fin := make(resolved, 1)
			b.Start(testQuery, deadline, fin)
			r := dottest.Await(t, fin, "the query's end")
			if r.err == nil || r.from != cfg.Unanswered {
				t.Errorf("hedge %v, deadline in %v: ended with %v from %v, want an error from %v",
					cfg.HedgeAfter, time.Until(deadline).Round(time.Hour), r.err, r.from, cfg.Unanswered)
			}
		}
	}

	fail := errors.New("refused")
	b, err := newBalancer(members([]*transferFake{{fakeUpstream: newFake("u0", answer), err: fail}}),
		Config{Unanswered: route("corp")}, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	from, err := b.Transfer(testQuery, far(), time.Second, func([]byte) error { return nil })
	if !errors.Is(err, fail) || from != route("corp") {
		t.Fatalf("transfer ended with %v from %v, want %v from corp", err, from, fail)
	}
}
