package dnsmsg_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

var padAndKeepalive = dnsmsg.Rewrite{PadBlock: 128, Keepalive: true}

// optionCodes lists the codes of the EDNS options of m, in order.
func optionCodes(m *dns.Msg) []uint16 {
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	var codes []uint16
	for _, o := range opt.Option {
		codes = append(codes, o.Option())
	}
	return codes
}

func TestAppendUpstreamQueryPadsToBlocks(t *testing.T) {
	for _, n := range []int{1, 10, 30, 60, 63, 120, 200} {
		for _, edns := range []bool{false, true} {
			m := new(dns.Msg)
			m.SetQuestion(strings.Repeat("a", min(n, 63))+"."+strings.Repeat("b", max(n-63, 1)%63+1)+".example.", dns.TypeA)
			if edns {
				m.SetEdns0(4096, true)
				m.IsEdns0().Option = append(m.IsEdns0().Option,
					&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
					&dns.EDNS0_PADDING{Padding: make([]byte, 9)}) // the client's own: replaced
			}
			q := pack(t, m)
			out, sent, err := dnsmsg.AppendUpstreamQuery(nil, q, padAndKeepalive)
			if err != nil || sent.AddedOPT == edns {
				t.Fatalf("n=%d edns=%v: sent %+v, %v", n, edns, sent, err)
			}
			if len(out)%128 != 0 {
				t.Fatalf("n=%d edns=%v: %d bytes, not a multiple of 128", n, edns, len(out))
			}
			got := unpack(t, out)
			want := []uint16{dns.EDNS0TCPKEEPALIVE, dns.EDNS0PADDING}
			if edns {
				want = append([]uint16{dns.EDNS0COOKIE}, want...)
				if got.IsEdns0().UDPSize() != 4096 || !got.IsEdns0().Do() {
					t.Fatalf("the client's OPT header changed: %v", got.IsEdns0())
				}
			} else if got.IsEdns0().UDPSize() != dnsmsg.AdvertisedUDPSize || got.IsEdns0().Do() {
				t.Fatalf("added OPT: %v", got.IsEdns0())
			}
			if codes := optionCodes(got); !equalCodes(codes, want) {
				t.Fatalf("n=%d edns=%v: options %v, want %v", n, edns, codes, want)
			}
			if got.Question[0] != m.Question[0] || got.Id != m.Id || got.RecursionDesired != m.RecursionDesired {
				t.Fatalf("question or header changed: %v", got)
			}
		}
	}
}

func equalCodes(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAppendUpstreamQueryLeavesAlone(t *testing.T) {
	plain := new(dns.Msg)
	plain.SetQuestion("example.org.", dns.TypeA)
	two := plain.Copy()
	two.Question = append(two.Question, dns.Question{Name: "example.net.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	signed := plain.Copy()
	signed.SetTsig("key.", dns.HmacSHA256, 300, time.Now().Unix())
	signedWire, _, err := dns.TsigGenerate(signed, "c2VjcmV0c2VjcmV0", "", false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    []byte
		r    dnsmsg.Rewrite
	}{
		{"nothing asked", pack(t, plain), dnsmsg.Rewrite{}},
		{"two questions", pack(t, two), padAndKeepalive},
		{"TSIG-signed", signedWire, padAndKeepalive},
		{"trailing bytes", append(pack(t, plain), 0, 0), padAndKeepalive},
		{"truncated", pack(t, plain)[:15], padAndKeepalive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, sent, err := dnsmsg.AppendUpstreamQuery([]byte("x"), tt.q, tt.r)
			if err != nil || sent != (dnsmsg.Sent{}) || !bytes.Equal(out, append([]byte("x"), tt.q...)) {
				t.Fatalf("changed: sent %+v, %v, %x", sent, err, out)
			}
		})
	}
}

func TestAppendUpstreamQueryDoesNotAllocate(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("alloc.example.", dns.TypeA)
	m.SetEdns0(1232, false)
	q := pack(t, m)
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() {
		buf, _, _ = dnsmsg.AppendUpstreamQuery(buf[:0], q, padAndKeepalive)
	}); n != 0 {
		t.Fatalf("%v allocations per query", n)
	}
}

// answerFor builds an upstream's answer to q with the given EDNS options.
func answerFor(t *testing.T, q *dns.Msg, opts ...dns.EDNS0) *dns.Msg {
	t.Helper()
	a := new(dns.Msg)
	a.SetReply(q)
	a.Answer = append(a.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}})
	a.Compress = true
	a.SetEdns0(1232, false)
	a.IsEdns0().Option = opts
	return a
}

func TestCleanAnswer(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("clean.example.", dns.TypeA)
	keep := &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: 300, Length: 2}
	pad := &dns.EDNS0_PADDING{Padding: make([]byte, 100)}
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708aabbccddeeff0011"}

	t.Run("keeps the client's OPT, drops padding and keepalive", func(t *testing.T) {
		a := answerFor(t, q, cookie, keep, pad)
		raw := pack(t, a)
		out, ka, ok := dnsmsg.CleanAnswer(raw, nil, dnsmsg.Sent{})
		if !ok || ka != 30*time.Second {
			t.Fatalf("keepalive = %v, %v; want 30s", ka, ok)
		}
		want := answerFor(t, q, cookie)
		if !bytes.Equal(out, pack(t, want)) {
			t.Fatalf("got  %x\nwant %x", out, pack(t, want))
		}
	})
	t.Run("removes the OPT the proxy added", func(t *testing.T) {
		raw := pack(t, answerFor(t, q, keep, pad))
		out, _, ok := dnsmsg.CleanAnswer(raw, nil, dnsmsg.Sent{AddedOPT: true})
		if !ok {
			t.Fatal("keepalive not reported")
		}
		want := answerFor(t, q)
		want.Extra = nil
		if !bytes.Equal(out, pack(t, want)) {
			t.Fatalf("got  %x\nwant %x", out, pack(t, want))
		}
	})
	t.Run("keeps an OPT that carries an extended RCODE", func(t *testing.T) {
		a := answerFor(t, q, pad)
		a.Rcode = dns.RcodeBadCookie // 23: needs the OPT's upper bits
		out, _, _ := dnsmsg.CleanAnswer(pack(t, a), nil, dnsmsg.Sent{AddedOPT: true})
		got := unpack(t, out)
		if got.Rcode != dns.RcodeBadCookie || len(optionCodes(got)) != 0 {
			t.Fatalf("rcode %d, options %v", got.Rcode, optionCodes(got))
		}
	})
	t.Run("no OPT: unchanged", func(t *testing.T) {
		a := answerFor(t, q)
		a.Extra = nil
		raw := pack(t, a)
		out, _, ok := dnsmsg.CleanAnswer(bytes.Clone(raw), nil, dnsmsg.Sent{AddedOPT: true})
		if ok || !bytes.Equal(out, raw) {
			t.Fatal("changed")
		}
	})
	t.Run("does not allocate", func(t *testing.T) {
		raw := pack(t, answerFor(t, q, cookie, keep, pad))
		buf := make([]byte, len(raw))
		if n := testing.AllocsPerRun(100, func() {
			copy(buf, raw)
			dnsmsg.CleanAnswer(buf, nil, dnsmsg.Sent{})
		}); n != 0 {
			t.Fatalf("%v allocations", n)
		}
	})
}

// FuzzRewrite feeds any bytes through the query rewrite and the answer
// clean-up. Nothing may panic; a rewritten query must be what miekg/dns reads
// as the original with the options changed as documented, padded to the
// block; a cleaned message must still be readable where the input was.
// With HideClientSubnet, no ECS option with address information ever
// leaves, the rewrite refuses exactly what CheckClientSubnet refuses, and
// the answer's restored subnet is the client's own, within MaxCleanGrowth.
func FuzzRewrite(f *testing.F) {
	m := new(dns.Msg)
	m.SetQuestion("fuzz.example.", dns.TypeMX)
	b, _ := m.Pack()
	f.Add(b)
	m.SetEdns0(4096, true)
	b, _ = m.Pack()
	f.Add(b)
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{192, 0, 2, 0}}}
	b, _ = m.Pack()
	f.Add(b)

	// A fixed client query whose /56 was hidden, for cleaning the fuzzed
	// bytes as its answer.
	client := new(dns.Msg)
	client.SetQuestion("fuzz.example.", dns.TypeMX)
	client.SetEdns0(1232, false)
	client.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: make([]byte, 16)}}
	clientQ, _ := client.Pack()
	_, clientSent, err := dnsmsg.AppendUpstreamQuery(nil, clientQ, hideAndPad)
	if err != nil || !clientSent.HidSubnet() {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		var in dns.Msg
		inErr := in.Unpack(msg)
		parsed, parseErr := dnsmsg.ParseQuery(msg)

		out, sent, err := dnsmsg.AppendUpstreamQuery(nil, msg, padAndKeepalive)
		if !bytes.Equal(orig, msg) {
			t.Fatal("AppendUpstreamQuery modified its input")
		}
		if err != nil || sent.HidSubnet() {
			t.Fatalf("without HideClientSubnet: %v, %+v", err, sent)
		}
		if !bytes.Equal(out, msg) {
			if len(out)%128 != 0 {
				t.Fatalf("rewritten query of %d bytes", len(out))
			}
			if inErr == nil {
				var got dns.Msg
				if err := got.Unpack(out); err != nil {
					t.Fatalf("rewritten query unreadable: %v", err)
				}
				if len(got.Question) != len(in.Question) || len(got.Answer) != len(in.Answer) || len(got.Ns) != len(in.Ns) {
					t.Fatalf("sections changed: %v\n%v", &in, &got)
				}
				if sent.AddedOPT != (in.IsEdns0() == nil) {
					t.Fatalf("AddedOPT = %v for %v", sent.AddedOPT, &in)
				}
			}
		}
		cleaned, _, _ := dnsmsg.CleanAnswer(bytes.Clone(msg), msg, sent)
		if inErr == nil {
			var got dns.Msg
			if err := got.Unpack(cleaned); err != nil {
				t.Fatalf("cleaned answer unreadable: %v\nin  %x\nout %x", err, msg, cleaned)
			}
		}

		for _, r := range []dnsmsg.Rewrite{hideAndPad, hideOnly} {
			out, sent, err := dnsmsg.AppendUpstreamQuery(nil, msg, r)
			if !bytes.Equal(orig, msg) {
				t.Fatal("AppendUpstreamQuery modified its input")
			}
			if parseErr == nil {
				rcode, ok := dnsmsg.CheckClientSubnet(msg, &parsed)
				if ok != (err == nil) || !ok && (rcode == dnsmsg.RcodeFormErr) != errors.Is(err, dnsmsg.ErrBadClientSubnet) {
					t.Fatalf("CheckClientSubnet says %d, %v; the rewrite %v", rcode, ok, err)
				}
			}
			if err != nil {
				if out != nil || !errors.Is(err, dnsmsg.ErrBadClientSubnet) && !errors.Is(err, dnsmsg.ErrClientSubnetKept) {
					t.Fatalf("refused with %v, appended %x", err, out)
				}
				continue
			}
			if leaksSubnet(out) {
				t.Fatalf("a subnet left:\nin  %x\nout %x", msg, out)
			}
			if !sent.HidSubnet() {
				continue
			}
			// The resolver echoes the query, its hidden options with it.
			answer := bytes.Clone(out)
			answer[2] |= 0x80
			buf := append(make([]byte, 0, len(answer)+dnsmsg.MaxCleanGrowth), answer...)
			restored, _, _ := dnsmsg.CleanAnswer(buf, msg, sent)
			if len(restored) > len(answer)+dnsmsg.MaxCleanGrowth || &restored[0] != &buf[0] {
				t.Fatalf("answer of %d bytes cleaned to %d", len(answer), len(restored))
			}
			got, want := subnetOptions(restored), subnetOptions(msg)
			if len(got) != 1 || !bytes.Equal(got[0], want[0]) {
				t.Fatalf("the client sent ECS %x and got back %x", want, got)
			}
		}

		grown, _, _ := dnsmsg.CleanAnswer(bytes.Clone(msg), clientQ, clientSent)
		if len(grown) > len(msg)+dnsmsg.MaxCleanGrowth || len(grown) > 65535 && len(grown) > len(msg) {
			t.Fatalf("answer of %d bytes cleaned to %d", len(msg), len(grown))
		}
		if inErr == nil {
			var got dns.Msg
			if err := got.Unpack(grown); err != nil {
				t.Fatalf("cleaned answer unreadable: %v\nin  %x\nout %x", err, msg, grown)
			}
		}
	})
}
