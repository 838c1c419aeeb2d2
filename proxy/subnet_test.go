package proxy_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// recording is a resolver that keeps every query it is given and answers
// each with its own bytes, QR set: it never needs to parse them.
type recording struct {
	mu   sync.Mutex
	seen [][]byte
}

func (r *recording) resolver() resolverFunc {
	return func(_ context.Context, q []byte) ([]byte, string, error) {
		r.mu.Lock()
		r.seen = append(r.seen, bytes.Clone(q))
		r.mu.Unlock()
		a := bytes.Clone(q)
		a[2] |= 0x80
		return a, "up.test:853", nil
	}
}

func (r *recording) queries() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.seen...)
}

// subnetQuery packs an A query carrying the given EDNS options.
func subnetQuery(tb testing.TB, id uint16, opts ...dns.EDNS0) []byte {
	tb.Helper()
	m := msg("subnet.example", dns.TypeA, id)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = opts
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// A query whose client subnet the upstreams could not hide is answered by
// the proxy and reaches no resolver, so that it never counts against an
// upstream's health; one whose subnet they can hide goes on as it came,
// since the upstream's rewrite hides it.
func TestClientSubnetAnsweredByTheProxy(t *testing.T) {
	v4 := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0).To4()}
	signed := msg("signed.example", dns.TypeA, 11)
	signed.SetEdns0(1232, false)
	signed.IsEdns0().Option = []dns.EDNS0{v4}
	signed.SetTsig("key.", dns.HmacSHA256, 300, time.Now().Unix())
	signedWire, _, err := dns.TsigGenerate(signed, "c2VjcmV0c2VjcmV0", "", false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		q     []byte
		rcode int // the proxy's own answer; -1: forwarded
	}{
		{"IPv4 /24", subnetQuery(t, 12, v4), -1},
		{"IPv6 /56", subnetQuery(t, 13, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: net.ParseIP("2001:db8::")}), -1},
		{"no ECS", subnetQuery(t, 14), -1},
		{"malformed ECS: IPv4 /33", subnetQuery(t, 15, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 33, 0, 1, 2, 3, 4, 5}}), dns.RcodeFormatError},
		{"malformed ECS: FAMILY 9", subnetQuery(t, 16, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 9, 0, 0}}), dns.RcodeFormatError},
		{"signed, with ECS", signedWire, dns.RcodeRefused},
	}
	for _, hide := range []bool{true, false} {
		rec := &recording{}
		_, addr, obs := start(t, rec.resolver(), func(c *proxy.Config) { c.HideClientSubnet = hide })
		for _, tt := range tests {
			for _, network := range []string{"udp", "tcp"} {
				var reply []byte
				if network == "udp" {
					reply = rawUDP(t, addr, tt.q, 10*time.Second)
				} else {
					c := dialTCP(t, addr)
					if _, err := c.Write(tt.q); err != nil {
						t.Fatal(err)
					}
					if reply, err = c.ReadMsgHeader(nil); err != nil {
						t.Fatal(err)
					}
				}
				want := tt.rcode
				if !hide {
					want = -1
				}
				switch {
				case len(reply) < dnsmsg.HeaderLen || dnsmsg.ID(reply) != dnsmsg.ID(tt.q):
					t.Fatalf("hide=%v %s %s: reply %x", hide, tt.name, network, reply)
				case want < 0 && !bytes.Equal(reply[2:], append([]byte{tt.q[2] | 0x80}, tt.q[3:]...)):
					t.Fatalf("hide=%v %s %s: not the resolver's answer: %x", hide, tt.name, network, reply)
				case want >= 0 && dnsmsg.Rcode(reply) != want:
					t.Fatalf("hide=%v %s %s: rcode %d, want %d", hide, tt.name, network, dnsmsg.Rcode(reply), want)
				case want >= 0:
					// The proxy's own reply says why, where it can.
					m := new(dns.Msg)
					if err := m.Unpack(reply); err != nil {
						t.Fatalf("hide=%v %s %s: %v", hide, tt.name, network, err)
					}
					text := "client subnet cannot be hidden"
					if want == dns.RcodeFormatError {
						text = "malformed client subnet option"
					}
					if opt := m.IsEdns0(); opt != nil {
						e, ok := opt.Option[len(opt.Option)-1].(*dns.EDNS0_EDE)
						if !ok || e.InfoCode != dns.ExtendedErrorCodeOther || e.ExtraText != text {
							t.Fatalf("hide=%v %s %s: options %v, want EDE 0 %q", hide, tt.name, network, opt.Option, text)
						}
					}
				}
			}
		}
		// The forwarded queries went on byte for byte; the others went
		// nowhere.
		var forwarded int
		for _, tt := range tests {
			if tt.rcode < 0 || !hide {
				forwarded += 2
			}
		}
		if got := len(rec.queries()); got != forwarded {
			t.Fatalf("hide=%v: the resolver got %d queries, want %d", hide, got, forwarded)
		}
		s := obs.snapshot()
		wantMalformed, wantRefused := 0, 0
		if hide {
			wantMalformed, wantRefused = 4, 2
		}
		if s.malformed != wantMalformed || s.refused != wantRefused {
			t.Fatalf("hide=%v: counted %d malformed, %d refused; want %d, %d", hide, s.malformed, s.refused, wantMalformed, wantRefused)
		}
	}
}
