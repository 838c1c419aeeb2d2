package dnsmsg_test

import (
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/miekg/dns"
)

// Inputs for the benchmarks and allocation pins of the readers that walk
// names: a query, its compressed answer, and a transfer message of SOA
// records whose names point back into the question.
type nameInputs struct {
	query, answer, compressed, transfer []byte
}

func newNameInputs(tb testing.TB) nameInputs {
	tb.Helper()
	q := new(dns.Msg)
	q.SetQuestion("www.bench.example.org.", dns.TypeAAAA)
	q.SetEdns0(1232, true)
	ans := new(dns.Msg)
	ans.SetReply(q)
	ans.Compress = true
	ans.SetEdns0(1232, true)
	ans.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_PADDING{Padding: make([]byte, 20)}}
	for i := range 4 {
		ans.Answer = append(ans.Answer, &dns.CNAME{
			Hdr:    dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60},
			Target: string(rune('a'+i)) + ".cdn.bench.example.org.",
		})
	}
	// The second question compressed against the first: AnswerMatches
	// follows a pointer in each message.
	hdr := []byte{0, 1, 0x81, 0, 0, 2, 0, 0, 0, 0, 0, 0}
	q1 := []byte("\x03www\x05bench\x07example\x03org\x00\x00\x1c\x00\x01")
	compressed := append(append(hdr, q1...), 0xC0, 16, 0, 28, 0, 1)
	return nameInputs{
		query:      pack(tb, q),
		answer:     pack(tb, ans),
		compressed: compressed,
		transfer:   xfrMessages(tb, dns.TypeAXFR, 10, 0, soa(5), a("a.zone.example."), a("b.zone.example."), soa(5))[0],
	}
}

// nameReaders are the package's functions that walk names and must not
// allocate, each run once over in.
func nameReaders(in nameInputs) map[string]func() {
	compressedQuery := append([]byte(nil), in.compressed...)
	compressedQuery[2] &^= 0x80
	return map[string]func(){
		"ParseQuery":              func() { _, _ = dnsmsg.ParseQuery(in.query) },
		"FindOPT":                 func() { _, _, _ = dnsmsg.FindOPT(in.answer) },
		"AnswerMatches":           func() { _ = dnsmsg.AnswerMatches(in.query, in.answer) },
		"AnswerMatchesCompressed": func() { _ = dnsmsg.AnswerMatches(compressedQuery, in.compressed) },
		"FirstQuestion":           func() { _ = dnsmsg.FirstQuestion(in.answer) },
		"TransferEnd": func() {
			var end dnsmsg.TransferEnd // a value: NewTransferEnd's pointer may escape
			_, _ = end.Next(in.transfer)
		},
	}
}

func TestNameReadersDoNotAllocate(t *testing.T) {
	in := newNameInputs(t)
	// The inputs walk every name to the end, not to an early failure.
	compressedQuery := append([]byte(nil), in.compressed...)
	compressedQuery[2] &^= 0x80
	if !dnsmsg.AnswerMatches(in.query, in.answer) || !dnsmsg.AnswerMatches(compressedQuery, in.compressed) {
		t.Fatal("the benchmark's answers do not match")
	}
	if _, _, ok := dnsmsg.FindOPT(in.answer); !ok {
		t.Fatal("the benchmark's answer has no OPT record")
	}
	if last, err := dnsmsg.NewTransferEnd(dns.TypeAXFR).Next(in.transfer); !last || err != nil {
		t.Fatalf("the benchmark's transfer: last %v, err %v", last, err)
	}
	for name, f := range nameReaders(in) {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

func BenchmarkNameReaders(b *testing.B) {
	in := newNameInputs(b)
	for _, name := range []string{"ParseQuery", "FindOPT", "AnswerMatches", "AnswerMatchesCompressed", "FirstQuestion", "TransferEnd"} {
		f := nameReaders(in)[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f()
			}
		})
	}
}

func BenchmarkQuestionString(b *testing.B) {
	q, err := dnsmsg.ParseQuery(newNameInputs(b).query)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = dnsmsg.QuestionString(q.Question)
	}
}

func BenchmarkAppendUpstreamQuery(b *testing.B) {
	q := newNameInputs(b).query
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = dnsmsg.AppendUpstreamQuery(buf[:0], q, padAndKeepalive)
	}
}

func BenchmarkCleanAnswer(b *testing.B) {
	raw := newNameInputs(b).answer
	buf := make([]byte, len(raw))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, raw)
		dnsmsg.CleanAnswer(buf, nil, dnsmsg.Sent{})
	}
}

// clientSubnetInputs are a query with an IPv6 /56 ECS option and a cookie,
// as a stub that sends its subnet asks, and the resolver's answer to it
// with the /0 echoed.
func clientSubnetInputs(b *testing.B) (query, answer []byte) {
	q := new(dns.Msg)
	q.SetQuestion("www.bench.example.org.", dns.TypeAAAA)
	q.SetEdns0(1232, true)
	q.IsEdns0().Option = []dns.EDNS0{
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0x23, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	ans := new(dns.Msg)
	ans.SetReply(q)
	ans.SetEdns0(1232, true)
	ans.IsEdns0().Option = []dns.EDNS0{
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708aabbccddeeff0011"},
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, Address: make([]byte, 16)},
		&dns.EDNS0_PADDING{Padding: make([]byte, 20)},
	}
	return pack(b, q), pack(b, ans)
}

// BenchmarkAppendUpstreamQueryClientSubnet is the rewrite of a query with an
// ECS option: passed on (padding and keepalive only), and hidden.
func BenchmarkAppendUpstreamQueryClientSubnet(b *testing.B) {
	q, _ := clientSubnetInputs(b)
	for name, r := range map[string]dnsmsg.Rewrite{"pass": padAndKeepalive, "hide": hideAndPad} {
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				buf, _, _ = dnsmsg.AppendUpstreamQuery(buf[:0], q, r)
			}
		})
	}
}

// BenchmarkCleanAnswerClientSubnet cleans the answer to a query whose
// subnet was hidden: the client's option replaces the /0 echo.
func BenchmarkCleanAnswerClientSubnet(b *testing.B) {
	q, raw := clientSubnetInputs(b)
	_, sent, err := dnsmsg.AppendUpstreamQuery(nil, q, hideAndPad)
	if err != nil || !sent.HidSubnet() {
		b.Fatal(err)
	}
	buf := make([]byte, len(raw), len(raw)+dnsmsg.MaxCleanGrowth)
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:len(raw)]
		copy(buf, raw)
		dnsmsg.CleanAnswer(buf, q, sent)
	}
}

// BenchmarkCheckClientSubnet is the proxy's look at each query under hide:
// one without ECS, and one with a subnet to hide.
func BenchmarkCheckClientSubnet(b *testing.B) {
	ecs, _ := clientSubnetInputs(b)
	for name, q := range map[string][]byte{"without": newNameInputs(b).query, "with": ecs} {
		parsed, err := dnsmsg.ParseQuery(q)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := dnsmsg.CheckClientSubnet(q, &parsed); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}
