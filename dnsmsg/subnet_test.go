package dnsmsg_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

var (
	hideOnly    = dnsmsg.Rewrite{HideClientSubnet: true}
	hideAndPad  = dnsmsg.Rewrite{PadBlock: 128, Keepalive: true, HideClientSubnet: true}
	hideRewrite = map[string]dnsmsg.Rewrite{"padded": hideAndPad, "unpadded": hideOnly}
)

func ecs4(bits uint8, a, b, c, d byte) *dns.EDNS0_SUBNET {
	return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: bits, Address: net.IPv4(a, b, c, d).To4()}
}

func ecs6(bits uint8, addr string) *dns.EDNS0_SUBNET {
	return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: bits, Address: net.ParseIP(addr)}
}

// rawECS is an ECS option with the given data, packed as it stands, for
// options that miekg/dns would refuse to build.
func rawECS(data ...byte) *dns.EDNS0_LOCAL {
	return &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data}
}

// localOpt is an option of a code with no meaning here, kept as it is.
func localOpt(code uint16, data string) dns.EDNS0 {
	return &dns.EDNS0_LOCAL{Code: code, Data: []byte(data)}
}

// ecsQuery packs a query for name with EDNS and the given options.
func ecsQuery(tb testing.TB, name string, opts ...dns.EDNS0) []byte {
	tb.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Id = 0x5151
	m.SetEdns0(1232, true)
	m.IsEdns0().Option = opts
	return pack(tb, m)
}

// subnetOptions returns the raw data of each ECS option in the OPT records of
// msg, found by walking the records with no help from the package: a check
// that does not share the code it checks.
func subnetOptions(msg []byte) [][]byte {
	if len(msg) < 12 {
		return nil
	}
	skipName := func(off int) int {
		for off < len(msg) {
			l := int(msg[off])
			switch {
			case l == 0:
				return off + 1
			case l&0xC0 == 0xC0:
				return off + 2
			case l&0xC0 != 0:
				return -1
			}
			off += 1 + l
		}
		return -1
	}
	off := 12
	for range binary.BigEndian.Uint16(msg[4:]) {
		if off = skipName(off); off < 0 || off+4 > len(msg) {
			return nil
		}
		off += 4
	}
	// RFC 6891 §6.1.1: an OPT record counts in the additional section only.
	rr := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:]))
	ar := int(binary.BigEndian.Uint16(msg[10:]))
	var found [][]byte
	for i := range rr + ar {
		name := off
		if off = skipName(off); off < 0 || off+10 > len(msg) {
			return found
		}
		typ := binary.BigEndian.Uint16(msg[off:])
		end := off + 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
		if end > len(msg) {
			return found
		}
		if i >= rr && typ == dns.TypeOPT && msg[name] == 0 {
			rd := msg[off+10 : end]
			for o := 0; o+4 <= len(rd); {
				n := int(binary.BigEndian.Uint16(rd[o+2:]))
				data := rd[o+4 : min(o+4+n, len(rd))]
				if binary.BigEndian.Uint16(rd[o:]) == dns.EDNS0SUBNET {
					found = append(found, data)
				}
				o += 4 + n
			}
		}
		off = end
	}
	return found
}

// leaksSubnet reports an ECS option in msg that carries any address
// information: a non-zero SOURCE PREFIX-LENGTH or any ADDRESS octet.
func leaksSubnet(msg []byte) bool {
	for _, data := range subnetOptions(msg) {
		if len(data) > 4 || len(data) >= 3 && data[2] != 0 {
			return true
		}
	}
	return false
}

func TestClientSubnetPolicyFromText(t *testing.T) {
	for in, want := range map[string]dnsmsg.ClientSubnet{"hide": dnsmsg.SubnetHide, "HIDE": dnsmsg.SubnetHide, "Pass": dnsmsg.SubnetPass} {
		var s dnsmsg.ClientSubnet
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("%q: %q, %v", in, s, err)
		}
	}
	for _, in := range []string{"", "strip", "hide "} {
		var s dnsmsg.ClientSubnet
		if err := s.UnmarshalText([]byte(in)); err == nil || !strings.Contains(err.Error(), "hide, pass") {
			t.Errorf("%q: accepted (%v)", in, err)
		}
	}
	if !dnsmsg.SubnetHide.Hide() || dnsmsg.SubnetPass.Hide() || dnsmsg.ClientSubnet("").Hide() {
		t.Error("Hide")
	}
}

// Each ECS option leaves as FAMILY, /0, scope 0 and no address; every other
// option, the header and the question as the client sent them.
func TestHideClientSubnet(t *testing.T) {
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
	tests := []struct {
		name     string
		opts     []dns.EDNS0
		families []uint16 // of the ECS options sent, in order
		hidden   bool     // a subnet was hidden: the answer gets it back
	}{
		{"IPv4 /24", []dns.EDNS0{ecs4(24, 192, 0, 2, 0)}, []uint16{1}, true},
		{"IPv4 /32", []dns.EDNS0{ecs4(32, 192, 0, 2, 77)}, []uint16{1}, true},
		{"IPv4 /20", []dns.EDNS0{ecs4(20, 198, 51, 96, 0)}, []uint16{1}, true},
		{"IPv6 /56", []dns.EDNS0{ecs6(56, "2001:db8:1:2300::")}, []uint16{2}, true},
		{"IPv6 /128", []dns.EDNS0{ecs6(128, "2001:db8::1")}, []uint16{2}, true},
		{"between other options", []dns.EDNS0{cookie, ecs6(48, "2001:db8:7::"), localOpt(65001, "x")}, []uint16{2}, true},
		{"two, IPv4 and IPv6", []dns.EDNS0{ecs4(24, 192, 0, 2, 0), ecs6(56, "2001:db8::")}, []uint16{1, 2}, true},
		{"already /0", []dns.EDNS0{ecs4(0, 0, 0, 0, 0)}, []uint16{1}, false},
		{"FAMILY 0, /0", []dns.EDNS0{rawECS(0, 0, 0, 0)}, []uint16{0}, false},
		{"/0 then /24", []dns.EDNS0{ecs6(0, "::"), ecs4(24, 192, 0, 2, 0)}, []uint16{2, 1}, true},
	}
	for _, tt := range tests {
		for rname, r := range hideRewrite {
			t.Run(tt.name+" "+rname, func(t *testing.T) {
				q := ecsQuery(t, "hide.example", tt.opts...)
				out, sent, err := dnsmsg.AppendUpstreamQuery(nil, q, r)
				if err != nil {
					t.Fatal(err)
				}
				if sent.HidSubnet() != tt.hidden || sent.AddedOPT {
					t.Fatalf("sent %+v", sent)
				}
				if leaksSubnet(out) {
					t.Fatalf("address information left: %x", out)
				}
				if !tt.hidden && r == hideOnly {
					if !bytes.Equal(out, q) {
						t.Fatal("a query with no subnet to hide changed with padding off")
					}
					return
				}
				in, got := unpack(t, q), unpack(t, out)
				if got.Id != in.Id || got.Question[0] != in.Question[0] || !got.IsEdns0().Do() || got.IsEdns0().UDPSize() != 1232 {
					t.Fatalf("header, question or OPT header changed: %v", got)
				}
				var families []uint16
				var others []dns.EDNS0
				for _, o := range got.IsEdns0().Option {
					switch o := o.(type) {
					case *dns.EDNS0_SUBNET:
						if o.SourceNetmask != 0 || o.SourceScope != 0 {
							t.Fatalf("sent %v", o)
						}
						families = append(families, o.Family)
					case *dns.EDNS0_PADDING, *dns.EDNS0_TCP_KEEPALIVE:
					default:
						others = append(others, o)
					}
				}
				if !equalCodes(families, tt.families) {
					t.Fatalf("ECS families sent %v, want %v", families, tt.families)
				}
				var want []dns.EDNS0
				for _, o := range in.IsEdns0().Option {
					if o.Option() != dns.EDNS0SUBNET {
						want = append(want, o)
					}
				}
				if len(others) != len(want) {
					t.Fatalf("other options %v, want %v", others, want)
				}
				for i := range want {
					if others[i].String() != want[i].String() {
						t.Fatalf("option %d: %v, want %v", i, others[i], want[i])
					}
				}
				if r.PadBlock > 0 && len(out)%r.PadBlock != 0 {
					t.Fatalf("%d bytes: not padded", len(out))
				}
			})
		}
	}
}

// The rewrite never adds an ECS option of its own (RFC 7871 §7.1.2: no
// address for a client that sent none, nor a /0 it did not ask for).
func TestHideAddsNoSubnet(t *testing.T) {
	plain := new(dns.Msg)
	plain.SetQuestion("none.example.", dns.TypeAAAA)
	edns := plain.Copy()
	edns.SetEdns0(4096, false)
	cookie := edns.Copy()
	cookie.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
	for name, m := range map[string]*dns.Msg{"no EDNS": plain, "EDNS": edns, "EDNS with a cookie": cookie} {
		for rname, r := range hideRewrite {
			out, sent, err := dnsmsg.AppendUpstreamQuery(nil, pack(t, m), r)
			if err != nil || sent.HidSubnet() {
				t.Fatalf("%s %s: sent %+v, %v", name, rname, sent, err)
			}
			if opts := subnetOptions(out); len(opts) != 0 {
				t.Errorf("%s %s: the query left with ECS options %x", name, rname, opts)
			}
		}
	}
}

// A malformed ECS option (RFC 7871 §6) is not sent anywhere under hide: the
// proxy answers FORMERR, as a resolver would (§6, §7.2.1). With pass it goes
// as it came, for the resolver to judge.
func TestMalformedClientSubnet(t *testing.T) {
	tests := []struct {
		name string
		opts []dns.EDNS0
	}{
		{"no data", []dns.EDNS0{rawECS()}},
		{"FAMILY only", []dns.EDNS0{rawECS(0, 1)}},
		{"no SCOPE", []dns.EDNS0{rawECS(0, 1, 24)}},
		{"FAMILY 3", []dns.EDNS0{rawECS(0, 3, 8, 0, 10)}},
		{"FAMILY 0 with a prefix", []dns.EDNS0{rawECS(0, 0, 8, 0, 10)}},
		{"IPv4 /33", []dns.EDNS0{rawECS(0, 1, 33, 0, 192, 0, 2, 1, 0)}},
		{"IPv6 /129", []dns.EDNS0{rawECS(append([]byte{0, 2, 129, 0}, make([]byte, 17)...)...)}},
		{"SCOPE set in a query", []dns.EDNS0{rawECS(0, 1, 24, 24, 192, 0, 2)}},
		{"an address octet too many", []dns.EDNS0{rawECS(0, 1, 24, 0, 192, 0, 2, 0)}},
		{"an address octet short", []dns.EDNS0{rawECS(0, 1, 24, 0, 192, 0)}},
		{"/0 with an address", []dns.EDNS0{rawECS(0, 1, 0, 0, 192, 0, 2, 1)}},
		{"bits past the prefix", []dns.EDNS0{rawECS(0, 1, 20, 0, 198, 51, 0x6F)}},
		{"a good one, then a bad one", []dns.EDNS0{ecs4(24, 192, 0, 2, 0), rawECS(0, 7, 0, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := ecsQuery(t, "bad.example", tt.opts...)
			for rname, r := range hideRewrite {
				out, _, err := dnsmsg.AppendUpstreamQuery([]byte("x"), q, r)
				if !errors.Is(err, dnsmsg.ErrBadClientSubnet) || string(out) != "x" {
					t.Fatalf("%s: %v, appended %x", rname, err, out)
				}
			}
			parsed, err := dnsmsg.ParseQuery(q)
			if err != nil {
				t.Fatal(err)
			}
			if rcode, ok := dnsmsg.CheckClientSubnet(q, &parsed); ok || rcode != dnsmsg.RcodeFormErr {
				t.Fatalf("CheckClientSubnet: %d, %v", rcode, ok)
			}
			out, _, err := dnsmsg.AppendUpstreamQuery(nil, q, padAndKeepalive)
			if err != nil || !bytes.Contains(out, subnetOptions(q)[len(subnetOptions(q))-1]) {
				t.Fatalf("pass: %v, %x", err, out)
			}
		})
	}
}

// An option list that breaks off, with an ECS option before or at the
// break, cannot be rewritten with the rest kept: FORMERR. Without one it
// goes as before, unchanged.
func TestClientSubnetInBrokenOptionList(t *testing.T) {
	base := ecsQuery(t, "cut.example")
	withRD := func(rd ...byte) []byte {
		q := bytes.Clone(base)
		binary.BigEndian.PutUint16(q[len(q)-2:], uint16(len(rd)))
		return append(q, rd...)
	}
	for name, tt := range map[string]struct {
		q   []byte
		bad bool
	}{
		"ECS cut short":          {withRD(0, 8, 0, 7, 0, 1, 24, 0, 192), true},
		"ECS, then a cut option": {withRD(0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2, 0, 10, 0, 9, 1), true},
		"half an ECS header":     {withRD(0, 8, 0), true},
		"a cut cookie":           {withRD(0, 10, 0, 8, 1, 2), false},
	} {
		out, sent, err := dnsmsg.AppendUpstreamQuery(nil, tt.q, hideAndPad)
		switch {
		case tt.bad && !errors.Is(err, dnsmsg.ErrBadClientSubnet):
			t.Errorf("%s: %v", name, err)
		case !tt.bad && (err != nil || sent.HidSubnet() || !bytes.Equal(out, tt.q)):
			t.Errorf("%s: %v, %+v, changed %v", name, err, sent, !bytes.Equal(out, tt.q))
		}
	}
}

// A query the rewrite cannot move bytes in (signed, trailing bytes, a
// compression pointer into the OPT record) leaves unchanged when it has no
// subnet to hide, and not at all when it has: RFC 7871 §7.1.1 has a server
// that will not forward a client's address refuse.
func TestUnhidableClientSubnet(t *testing.T) {
	signed := func(opts ...dns.EDNS0) []byte {
		m := new(dns.Msg)
		m.SetQuestion("signed.example.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = opts
		m.SetTsig("key.", dns.HmacSHA256, 300, time.Now().Unix())
		wire, _, err := dns.TsigGenerate(m, "c2VjcmV0c2VjcmV0", "", false)
		if err != nil {
			t.Fatal(err)
		}
		return wire
	}
	trailing := func(opts ...dns.EDNS0) []byte { return append(ecsQuery(t, "trailing.example", opts...), 0, 0) }
	// An additional record after the OPT record whose owner name points
	// into the OPT record: moving those bytes would change its name.
	pointing := func(opts ...dns.EDNS0) []byte {
		q := ecsQuery(t, "pointer.example", opts...)
		s, _, ok := dnsmsg.FindOPT(q)
		if !ok {
			t.Fatal("no OPT")
		}
		binary.BigEndian.PutUint16(q[10:], 2)
		return append(q, 0xC0|byte(s>>8), byte(s), 0, 1, 0, 1, 0, 0, 0, 0, 0, 0)
	}
	for name, build := range map[string]func(...dns.EDNS0) []byte{"TSIG-signed": signed, "trailing bytes": trailing, "pointer into the OPT record": pointing} {
		t.Run(name, func(t *testing.T) {
			q := build(ecs4(24, 192, 0, 2, 0))
			for rname, r := range hideRewrite {
				out, _, err := dnsmsg.AppendUpstreamQuery(nil, q, r)
				if !errors.Is(err, dnsmsg.ErrClientSubnetKept) || out != nil {
					t.Fatalf("%s: %v, %x", rname, err, out)
				}
			}
			if parsed, err := dnsmsg.ParseQuery(q); err == nil {
				if rcode, ok := dnsmsg.CheckClientSubnet(q, &parsed); ok || rcode != dnsmsg.RcodeRefused {
					t.Fatalf("CheckClientSubnet: %d, %v", rcode, ok)
				}
			}
			for _, opts := range [][]dns.EDNS0{nil, {ecs6(0, "::")}} {
				q := build(opts...)
				out, sent, err := dnsmsg.AppendUpstreamQuery(nil, q, hideAndPad)
				if err != nil || sent != (dnsmsg.Sent{}) || !bytes.Equal(out, q) {
					t.Fatalf("without a subnet to hide: %v, %+v, changed %v", err, sent, !bytes.Equal(out, q))
				}
				if parsed, err := dnsmsg.ParseQuery(q); err == nil {
					if _, ok := dnsmsg.CheckClientSubnet(q, &parsed); !ok {
						t.Fatal("CheckClientSubnet refused a query with no subnet to hide")
					}
				}
			}
		})
	}
}

// A query that the walk cannot follow (here a second OPT record, which only
// a careless resolver reads) is found out by its records' lengths: no OPT
// record in it may carry a subnet.
func TestHideFindsEveryOPTRecord(t *testing.T) {
	q := ecsQuery(t, "two.example")
	second := ecsQuery(t, "two.example", ecs4(24, 192, 0, 2, 0))
	s, _, _ := dnsmsg.FindOPT(second)
	q = append(q, second[s:]...)
	binary.BigEndian.PutUint16(q[10:], 2)
	if _, _, err := dnsmsg.AppendUpstreamQuery(nil, q, hideOnly); !errors.Is(err, dnsmsg.ErrClientSubnetKept) {
		t.Fatalf("%v", err)
	}
}

// A query that would pass 65535 bytes once padded is hidden without the
// added options, rather than left as it came.
func TestHideFitsWithoutPadding(t *testing.T) {
	q := ecsQuery(t, "big.example", ecs6(56, "2001:db8::"), localOpt(65001, strings.Repeat("b", 65535-90)))
	if len(q) > 65535 || len(q) < 65535-40 {
		t.Fatalf("%d bytes", len(q))
	}
	out, sent, err := dnsmsg.AppendUpstreamQuery(nil, q, hideAndPad)
	if err != nil || !sent.HidSubnet() {
		t.Fatalf("%+v, %v", sent, err)
	}
	if len(out) > 65535 || leaksSubnet(out) {
		t.Fatalf("%d bytes, leaks %v", len(out), leaksSubnet(out))
	}
	for _, o := range unpack(t, out).IsEdns0().Option {
		if o.Option() == dns.EDNS0PADDING || o.Option() == dns.EDNS0TCPKEEPALIVE {
			t.Fatalf("added %v although it does not fit", o)
		}
	}
}

// echoAnswer is a resolver's answer to the query as sent upstream, echoing
// the given ECS options (RFC 7871 §7.2.1) beside padding and a cookie.
func echoAnswer(t *testing.T, sentQuery []byte, echo ...dns.EDNS0) []byte {
	t.Helper()
	q := unpack(t, sentQuery)
	a := answerFor(t, q, append([]dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708aabbccddeeff0011"}},
		append(echo, &dns.EDNS0_PADDING{Padding: make([]byte, 30)})...)...)
	return pack(t, a)
}

func TestCleanAnswerPutsTheClientSubnetBack(t *testing.T) {
	tests := []struct {
		name   string
		client []dns.EDNS0
		echo   []dns.EDNS0 // in the resolver's answer
		want   dns.EDNS0   // the ECS option the client gets; nil: none
	}{
		{"IPv4 /24, /0 echoed", []dns.EDNS0{ecs4(24, 192, 0, 2, 0)}, []dns.EDNS0{ecs4(0, 0, 0, 0, 0)}, ecs4(24, 192, 0, 2, 0)},
		{"IPv6 /56, /0 echoed", []dns.EDNS0{ecs6(56, "2001:db8:1:2300::")}, []dns.EDNS0{ecs6(0, "::")}, ecs6(56, "2001:db8:1:2300::")},
		{"IPv6 /128, /0 echoed", []dns.EDNS0{ecs6(128, "2001:db8::1")}, []dns.EDNS0{ecs6(0, "::")}, ecs6(128, "2001:db8::1")},
		{"no echo: none added", []dns.EDNS0{ecs4(24, 192, 0, 2, 0)}, nil, nil},
		{"the resolver's own scope and address", []dns.EDNS0{ecs4(24, 192, 0, 2, 0)},
			[]dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 0, SourceScope: 16, Address: net.IPv4(203, 0, 113, 0).To4()}},
			ecs4(24, 192, 0, 2, 0)},
		{"a short, broken echo", []dns.EDNS0{ecs6(128, "2001:db8::1")}, []dns.EDNS0{rawECS()}, ecs6(128, "2001:db8::1")},
		{"two echoes: one back", []dns.EDNS0{ecs4(24, 192, 0, 2, 0), ecs6(56, "2001:db8::")},
			[]dns.EDNS0{ecs4(0, 0, 0, 0, 0), ecs6(0, "::")}, ecs4(24, 192, 0, 2, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := ecsQuery(t, "restore.example", tt.client...)
			wire, sent, err := dnsmsg.AppendUpstreamQuery(nil, q, hideAndPad)
			if err != nil || !sent.HidSubnet() {
				t.Fatalf("%+v, %v", sent, err)
			}
			raw := echoAnswer(t, wire, tt.echo...)
			buf := make([]byte, len(raw), len(raw)+dnsmsg.MaxCleanGrowth)
			copy(buf, raw)
			out, _, _ := dnsmsg.CleanAnswer(buf, q, sent)
			if len(out) > len(raw)+dnsmsg.MaxCleanGrowth {
				t.Fatalf("grew from %d to %d bytes", len(raw), len(out))
			}
			if &out[0] != &buf[0] {
				t.Fatal("cleaned out of place")
			}
			got := unpack(t, out)
			var subnets []dns.EDNS0
			codes := optionCodes(got)
			for _, o := range got.IsEdns0().Option {
				if o.Option() == dns.EDNS0SUBNET {
					subnets = append(subnets, o)
				}
			}
			want := []uint16{dns.EDNS0COOKIE}
			if tt.want != nil {
				want = append(want, dns.EDNS0SUBNET)
				if len(subnets) != 1 || subnets[0].String() != tt.want.String() || subnets[0].(*dns.EDNS0_SUBNET).SourceScope != 0 {
					t.Fatalf("client got %v, want %v", subnets, tt.want)
				}
				// Byte for byte the client's first option.
				if !bytes.Contains(out, append([]byte{0, 8, 0, byte(len(subnetOptions(q)[0]))}, subnetOptions(q)[0]...)) {
					t.Fatal("not the client's own bytes")
				}
			}
			if !equalCodes(codes, want) {
				t.Fatalf("options %v, want %v", codes, want)
			}
			if len(got.Answer) != 1 || got.Answer[0].(*dns.A).A.String() != "192.0.2.1" || got.Answer[0].Header().Name != "restore.example." {
				t.Fatalf("answer section changed: %v", got.Answer)
			}
		})
	}
}

// With no subnet hidden, an ECS option in the answer is the resolver's and
// stays as it is.
func TestCleanAnswerLeavesAnUnhiddenSubnet(t *testing.T) {
	q := ecsQuery(t, "pass.example", ecs4(24, 192, 0, 2, 0))
	wire, sent, err := dnsmsg.AppendUpstreamQuery(nil, q, padAndKeepalive)
	if err != nil || sent.HidSubnet() {
		t.Fatal(err)
	}
	echo := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 20, Address: net.IPv4(192, 0, 2, 0).To4()}
	out, _, _ := dnsmsg.CleanAnswer(echoAnswer(t, wire, echo), q, sent)
	if got := unpack(t, out).IsEdns0().Option; len(got) != 2 || got[1].String() != echo.String() {
		t.Fatalf("%v", got)
	}
}

// An answer that the client's option would push past 65535 bytes loses the
// echo instead: the client's check finds no option, which RFC 7871 §7.3
// reads as scope /0.
func TestCleanAnswerAtTheSizeLimit(t *testing.T) {
	q := ecsQuery(t, "limit.example", ecs6(128, "2001:db8::1"))
	wire, sent, err := dnsmsg.AppendUpstreamQuery(nil, q, hideOnly)
	if err != nil {
		t.Fatal(err)
	}
	m := unpack(t, wire)
	a := new(dns.Msg)
	a.SetReply(m)
	a.SetEdns0(1232, false)
	a.IsEdns0().Option = []dns.EDNS0{ecs6(0, "::"), localOpt(65002, "")}
	size := len(pack(t, a))
	a.IsEdns0().Option[1] = localOpt(65002, strings.Repeat("p", 65535-size))
	raw := pack(t, a)
	if len(raw) != 65535 {
		t.Fatalf("%d bytes", len(raw))
	}
	out, _, _ := dnsmsg.CleanAnswer(raw, q, sent)
	if len(out) > 65535 || len(subnetOptions(out)) != 0 {
		t.Fatalf("%d bytes, ECS %x", len(out), subnetOptions(out))
	}
	unpack(t, out)
}

func TestClientSubnetDoesNotAllocate(t *testing.T) {
	q := ecsQuery(t, "alloc.example", ecs6(56, "2001:db8::"), &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	parsed, err := dnsmsg.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	var sent dnsmsg.Sent
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := dnsmsg.CheckClientSubnet(q, &parsed); !ok {
			t.Fatal("refused")
		}
		buf, sent, _ = dnsmsg.AppendUpstreamQuery(buf[:0], q, hideAndPad)
	}); n != 0 {
		t.Fatalf("%v allocations per query", n)
	}
	raw := echoAnswer(t, buf, ecs6(0, "::"))
	ans := make([]byte, len(raw), len(raw)+dnsmsg.MaxCleanGrowth)
	if n := testing.AllocsPerRun(100, func() {
		ans = ans[:len(raw)]
		copy(ans, raw)
		dnsmsg.CleanAnswer(ans, q, sent)
	}); n != 0 {
		t.Fatalf("%v allocations per answer", n)
	}
}
