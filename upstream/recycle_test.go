package upstream_test

import (
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

// Recycle retires the open connections: a query in flight on one still gets
// its answer there, new queries go to a new connection, and the old one
// closes once it has nothing in flight.
func TestRecycle(t *testing.T) {
	release := make(chan struct{})
	srv := dottest.Start(t, dottest.Options{Concurrent: true, Hold: func(q *dns.Msg) {
		if q.Question[0].Name == "held.example." {
			<-release
		}
	}})
	p, rec := openPool(t, srv, nil)
	dottest.Await(t, srv.ConnAccepted(), "the first connection")
	held := make(ended, 1)
	p.Start(query(t, "held.example", 7), within(10*time.Second), held)
	if n := p.Recycle(); n != 1 {
		t.Fatalf("Recycle retired %d connections, want 1", n)
	}
	q := query(t, "after.example", 8)
	ans, err := p.Exchange(q, within(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, q, ans)
	dottest.Await(t, srv.ConnAccepted(), "a new connection after Recycle")
	close(release)
	if e := dottest.Await(t, held, "the held query's answer"); e.err != nil {
		t.Fatalf("the query in flight on the retired connection failed: %v", e.err)
	}
	if got := dottest.Await(t, rec.closes, "the retired connection to close"); got != upstream.CloseIdle {
		t.Fatalf("the retired connection closed with %q, want %q", got, upstream.CloseIdle)
	}
}
