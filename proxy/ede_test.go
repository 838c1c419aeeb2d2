package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// unreachableErr is an error that says no upstream could be tried, as
// balance.ErrAllDown does.
type unreachableErr struct{ up bool }

func (unreachableErr) Error() string       { return "every upstream is down" }
func (e unreachableErr) Unreachable() bool { return e.up }

// failWith is a resolver that fails every query with err at once.
func failWith(err error) resolverFunc {
	return func(context.Context, []byte) ([]byte, string, error) { return nil, "", err }
}

// wantEDE checks that a carries exactly one Extended DNS Error, with code and
// text, when the query had EDNS, and no OPT record at all when it had none.
func wantEDE(t *testing.T, a *dns.Msg, edns bool, code uint16, text string) {
	t.Helper()
	opt := a.IsEdns0()
	if !edns {
		if opt != nil {
			t.Fatalf("an OPT record in the reply to a query without one: %v", opt)
		}
		return
	}
	if opt == nil || len(opt.Option) != 1 {
		t.Fatalf("reply OPT %v, want one EDE option", opt)
	}
	e, ok := opt.Option[0].(*dns.EDNS0_EDE)
	if !ok || e.InfoCode != code || e.ExtraText != text {
		t.Fatalf("reply option %v, want EDE %d %q", opt.Option[0], code, text)
	}
	if !opt.Do() {
		t.Fatal("the client's DO bit was not echoed")
	}
}

// TestOwnRepliesSayWhy: each reply the proxy makes itself carries, to a
// client that sent EDNS, the Extended DNS Error for its reason, over UDP
// and TCP; a client without EDNS gets the same reply with no OPT record.
// The SERVFAIL reasons are counted apart.
func TestOwnRepliesSayWhy(t *testing.T) {
	tests := []struct {
		name   string
		r      proxy.Resolver
		cfg    func(*proxy.Config)
		qtype  uint16
		rcode  int
		code   uint16
		text   string
		failed proxy.FailReason
	}{
		{name: "outside the access list", r: &echoResolver{},
			cfg:   func(c *proxy.Config) { c.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} },
			rcode: dns.RcodeRefused, code: dns.ExtendedErrorCodeProhibited, text: "client not allowed"},
		{name: "no answer in time", r: resolverFunc(func(ctx context.Context, _ []byte) ([]byte, string, error) {
			<-ctx.Done()
			return nil, "", ctx.Err()
		}),
			cfg:   func(c *proxy.Config) { c.QueryTimeout = 50 * time.Millisecond },
			rcode: dns.RcodeServerFailure, code: dns.ExtendedErrorCodeNoReachableAuthority,
			text: "no upstream answered in time", failed: proxy.FailDeadline},
		{name: "every attempt failed", r: failWith(errors.New("connection refused")),
			rcode: dns.RcodeServerFailure, code: dns.ExtendedErrorCodeNetworkError,
			text: "every upstream attempt failed", failed: proxy.FailUpstream},
		{name: "every upstream down", r: failWith(unreachableErr{up: true}),
			rcode: dns.RcodeServerFailure, code: dns.ExtendedErrorCodeNoReachableAuthority,
			text: "every upstream is down", failed: proxy.FailUnreachable},
		// Only the error itself is asked, as balance asks Timeout: a
		// wrapped one, or one that says false, is an upstream failure.
		{name: "wrapped unreachable error", r: failWith(fmt.Errorf("u0: %w", unreachableErr{up: true})),
			rcode: dns.RcodeServerFailure, code: dns.ExtendedErrorCodeNetworkError,
			text: "every upstream attempt failed", failed: proxy.FailUpstream},
		{name: "reachable after all", r: failWith(unreachableErr{up: false}),
			rcode: dns.RcodeServerFailure, code: dns.ExtendedErrorCodeNetworkError,
			text: "every upstream attempt failed", failed: proxy.FailUpstream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr, obs := start(t, tt.r, tt.cfg)
			for _, network := range []string{"udp", "tcp"} {
				for _, edns := range []bool{true, false} {
					q := msg("why.example", dns.TypeA, 0x0EDE)
					if edns {
						q.SetEdns0(1232, true)
					}
					a := exchange(t, network, addr, q)
					if a.Id != q.Id || a.Rcode != tt.rcode || len(a.Question) != 1 || a.Question[0] != q.Question[0] {
						t.Fatalf("%s, EDNS %v: reply %v", network, edns, a)
					}
					wantEDE(t, a, edns, tt.code, tt.text)
				}
			}
			if tt.failed != "" {
				if got := obs.snapshot().failed; got[tt.failed] != 4 || len(got) != 1 {
					t.Fatalf("failed %v, want 4 %s", got, tt.failed)
				}
			}
		})
	}
}

// TestNotImplementedTransferSaysWhy: a zone transfer over TCP, with a
// resolver that cannot pass one on, gets NOTIMP and Not Supported.
func TestNotImplementedTransferSaysWhy(t *testing.T) {
	_, addr, _ := start(t, &echoResolver{}, nil)
	for _, edns := range []bool{true, false} {
		q := msg("zone.example", dns.TypeAXFR, 45)
		if edns {
			q.SetEdns0(1232, true)
		}
		a := exchange(t, "tcp", addr, q)
		if a.Rcode != dns.RcodeNotImplemented {
			t.Fatalf("rcode %s, want NOTIMP", dns.RcodeToString[a.Rcode])
		}
		wantEDE(t, a, edns, dns.ExtendedErrorCodeNotSupported, "zone transfer not supported")
	}
}

// TestOverloadRefusalSaysWhy: a TCP query that finds the memory for queries
// in flight full is refused, saying the server is overloaded; one from
// outside the access list is refused as such, whatever the load.
func TestOverloadRefusalSaysWhy(t *testing.T) {
	_, addr, _ := start(t, &echoResolver{}, func(c *proxy.Config) { c.MaxInFlightBytes = 1 })
	_, acl, _ := start(t, &echoResolver{}, func(c *proxy.Config) {
		c.MaxInFlightBytes = 1
		c.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	})
	for _, edns := range []bool{true, false} {
		q := msg("busy.example", dns.TypeA, 46)
		if edns {
			q.SetEdns0(1232, true)
		}
		a := exchange(t, "tcp", addr, q)
		if a.Rcode != dns.RcodeRefused || a.Id != 46 {
			t.Fatalf("reply %v, want REFUSED", a)
		}
		wantEDE(t, a, edns, dns.ExtendedErrorCodeOther, "server overloaded")
		a = exchange(t, "tcp", acl, q)
		if a.Rcode != dns.RcodeRefused {
			t.Fatalf("reply %v, want REFUSED", a)
		}
		wantEDE(t, a, edns, dns.ExtendedErrorCodeProhibited, "client not allowed")
	}
}

// formErrQueries returns a query that does not parse (two questions) but
// whose OPT record, with DO set, can be found, and the same with its last
// byte cut, which leaves its OPT record unfindable.
func formErrQueries(t *testing.T) (findable, unfindable []byte) {
	t.Helper()
	m := msg("one.example", dns.TypeA, 0xF0)
	m.Question = append(m.Question, m.Question[0])
	m.SetEdns0(1232, true)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b, b[:len(b)-1]
}

// TestFormErrSaysWhyWhenItCan: a query that does not parse gets FORMERR
// with no question; with EDNS and the malformed-query EDE when its OPT
// record can still be found, with no OPT record when it cannot.
func TestFormErrSaysWhyWhenItCan(t *testing.T) {
	_, addr, obs := start(t, &echoResolver{}, nil)
	findable, unfindable := formErrQueries(t)
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range []struct {
			wire []byte
			edns bool
		}{{findable, true}, {unfindable, false}} {
			var a *dns.Msg
			if network == "udp" {
				a = new(dns.Msg)
				if err := a.Unpack(rawUDP(t, addr, tt.wire, 10*time.Second)); err != nil {
					t.Fatal(err)
				}
			} else {
				dc := dialTCP(t, addr)
				if _, err := dc.Write(tt.wire); err != nil {
					t.Fatal(err)
				}
				var err error
				if a, err = dc.ReadMsg(); err != nil {
					t.Fatal(err)
				}
			}
			if a.Rcode != dns.RcodeFormatError || a.Id != 0xF0 || len(a.Question) != 0 {
				t.Fatalf("%s: reply %v, want FORMERR without a question", network, a)
			}
			wantEDE(t, a, tt.edns, dns.ExtendedErrorCodeOther, "malformed query")
		}
	}
	if got := obs.snapshot().malformed; got != 4 {
		t.Fatalf("malformed = %d, want 4", got)
	}
}

// TestTooLargeTCPQueryGetsNoEDE: of a TCP query over MaxQuerySize only the
// header is kept, so its OPT record cannot be found: FORMERR, no OPT.
func TestTooLargeTCPQueryGetsNoEDE(t *testing.T) {
	_, addr, _ := start(t, &echoResolver{}, nil)
	dc := dialTCP(t, addr)
	if _, err := dc.Write(paddedQuery(t, 47, proxy.MaxQuerySize+1)); err != nil {
		t.Fatal(err)
	}
	a, err := dc.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if a.Rcode != dns.RcodeFormatError || a.Id != 47 {
		t.Fatalf("reply %v, want FORMERR", a)
	}
	wantEDE(t, a, false, 0, "")
}

// ownEDEResolver answers every query with SERVFAIL and an EDE of its own,
// as a validating resolver does, and keeps the bytes it answered with.
type ownEDEResolver struct {
	mu   sync.Mutex
	sent [][]byte
}

func (r *ownEDEResolver) Start(q []byte, deadline time.Time, fin proxy.Finisher) {
	later(r, q, deadline, fin)
}
func (r *ownEDEResolver) StartHeld(q []byte, deadline time.Time, fin proxy.Finisher) {
	r.Start(q, deadline, fin)
}
func (*ownEDEResolver) Flush() {}

func (r *ownEDEResolver) Resolve(q []byte, _ time.Time) ([]byte, fmt.Stringer, error) {
	m := new(dns.Msg)
	if err := m.Unpack(q); err != nil {
		return nil, nil, err
	}
	a := new(dns.Msg)
	a.SetRcode(m, dns.RcodeServerFailure)
	a.SetEdns0(1232, true)
	opt := a.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeDNSKEYMissing, ExtraText: "no DNSKEY for example."})
	b, err := a.Pack()
	r.mu.Lock()
	r.sent = append(r.sent, b)
	r.mu.Unlock()
	return b, named("up.test:853"), err
}

// TestResolverEDEPassesThrough: a resolver's answer, its own EDE included,
// reaches the client byte for byte; the proxy adds nothing of its own.
func TestResolverEDEPassesThrough(t *testing.T) {
	r := &ownEDEResolver{}
	_, addr, obs := start(t, r, nil)
	for i, network := range []string{"udp", "tcp"} {
		q := msg("bogus.example", dns.TypeA, 0xAB)
		q.SetEdns0(1232, true)
		wire, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		if network == "udp" {
			got = rawUDP(t, addr, wire, 10*time.Second)
		} else {
			dc := dialTCP(t, addr)
			if _, err := dc.Write(wire); err != nil {
				t.Fatal(err)
			}
			if got, err = dc.ReadMsgHeader(nil); err != nil {
				t.Fatal(err)
			}
		}
		r.mu.Lock()
		sent := r.sent[i]
		r.mu.Unlock()
		if !bytes.Equal(got, sent) {
			t.Fatalf("%s: client got %x, resolver sent %x", network, got, sent)
		}
	}
	if got := obs.snapshot().failed; len(got) != 0 {
		t.Fatalf("the resolver's SERVFAIL counted as the proxy's own: %v", got)
	}
}
