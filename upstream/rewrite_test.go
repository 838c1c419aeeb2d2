package upstream_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

var padded = func(c *upstream.Config) { c.Rewrite = dnsmsg.Rewrite{PadBlock: 128, Keepalive: true} }

// withResolverOptions answers as DefaultHandler does, then adds what a
// privacy-minded resolver adds to a padded query's answer: padding to 468
// bytes (RFC 8467 §4.1) and, when asked, its keepalive timeout.
func withResolverOptions(timeout uint16) func(q *dns.Msg) *dns.Msg {
	return func(q *dns.Msg) *dns.Msg {
		a := dottest.DefaultHandler(q)
		qopt := q.IsEdns0()
		if qopt == nil {
			return a
		}
		opt := a.IsEdns0()
		for _, o := range qopt.Option {
			switch o.Option() {
			case dns.EDNS0TCPKEEPALIVE:
				opt.Option = append(opt.Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Length: 2, Timeout: timeout})
			case dns.EDNS0PADDING:
				n := 468 - (a.Len()+4)%468
				opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, n)})
			}
		}
		return a
	}
}

func TestQueriesLeavePaddedAndAnswersComeBackClean(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	srv := dottest.Start(t, dottest.Options{
		Handler: withResolverOptions(100),
		Inspect: func(raw []byte) {
			mu.Lock()
			sizes = append(sizes, len(raw))
			mu.Unlock()
		},
	})
	p, _ := newPool(t, srv, padded)
	for i, n := range []int{1, 10, 30, 60, 120} {
		name := strings.Repeat("n", min(n, 60)) + "." + strings.Repeat("m", max(n-60, 1)) + ".example."
		for _, edns := range []bool{false, true} {
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			m.Id = uint16(i)
			if edns {
				m.SetEdns0(1232, true)
			}
			q, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			ans, err := p.Exchange(q, within(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			checkAnswer(t, q, ans)
			var a dns.Msg
			if err := a.Unpack(ans); err != nil {
				t.Fatal(err)
			}
			opt := a.IsEdns0()
			switch {
			case !edns && opt != nil:
				t.Fatalf("%s: the client sent no OPT but the answer has one: %v", name, &a)
			case edns && opt == nil:
				t.Fatalf("%s: the client's EDNS got no OPT back", name)
			case edns && len(opt.Option) != 0:
				t.Fatalf("%s: options reached the client: %v", name, opt.Option)
			case edns && !opt.Do():
				t.Fatalf("%s: DO bit lost", name)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 10 {
		t.Fatalf("server saw %d queries, want 10", len(sizes))
	}
	for _, s := range sizes {
		if s%128 != 0 {
			t.Fatalf("a query of %d bytes left unpadded; sizes %v", s, sizes)
		}
	}
}

func TestUnpaddedPoolSendsQueriesAsTheyAre(t *testing.T) {
	sizes := make(chan int, 1)
	srv := dottest.Start(t, dottest.Options{Inspect: func(raw []byte) { sizes <- len(raw) }})
	p, _ := newPool(t, srv, nil)
	q := query(t, "asis.example", 1)
	if _, err := p.Exchange(q, within(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := dottest.Await(t, sizes, "a query"); got != len(q) {
		t.Fatalf("server saw %d bytes, client sent %d", got, len(q))
	}
}

func TestResolverKeepaliveTimeoutIsHonoured(t *testing.T) {
	// The resolver keeps idle connections for 400 ms (4 units of 100 ms);
	// the configured idle timeout, a minute, must not be what counts.
	srv := dottest.Start(t, dottest.Options{Handler: withResolverOptions(4)})
	p, rec := newPool(t, srv, func(c *upstream.Config) {
		padded(c)
		c.IdleTimeout = time.Minute
		c.AttemptTimeout = 100 * time.Millisecond // a janitor tick of 25 ms
	})
	for i := range 3 {
		q := query(t, fmt.Sprintf("ka%d.example", i), uint16(i))
		if _, err := p.Exchange(q, within(5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if r := dottest.Await(t, rec.closes, "the close at the resolver's keepalive timeout"); r != upstream.CloseIdle {
		t.Fatalf("close reason %q, want idle", r)
	}
	if got := srv.Accepted(); got != 1 {
		t.Fatalf("%d connections, want 1", got)
	}
}
