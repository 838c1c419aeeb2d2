package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// kind says what a query is allowed to get back besides the resolver's own
// answer.
type kind int

const (
	// wellFormed queries must be answered exactly as the resolver answers.
	wellFormed kind = iota
	// malformed queries break RFC 1035's message format: dotproxy may
	// answer with its own FORMERR instead of the resolver's answer.
	malformed
	// multiQuestion queries have QDCOUNT > 1 (RFC 9619): dotproxy may
	// answer with its own FORMERR.
	multiQuestion
	// notQuery packets (QR set, shorter than a header) may go unanswered.
	notQuery
)

// query is one corpus entry. The ID in wire is zero; each exchange sets its
// own.
type query struct {
	desc string
	wire []byte
	kind kind
	// hop: the client sent a Padding or edns-tcp-keepalive option, which
	// describe a hop, not the query: an answer without them is intended.
	hop bool
	// subnet: what the query's EDNS Client Subnet options are, and so what
	// dotproxy does with them under DOTPROXY_CLIENT_SUBNET=hide.
	subnet subnetKind
	// From the message as built, for the truncation and own-reply rules.
	question []byte // the raw question section when QDCOUNT is 1
	edns     bool
	udpSize  uint16
}

// subnetKind sorts queries by their EDNS Client Subnet options (RFC 7871).
type subnetKind int

const (
	noSubnet subnetKind = iota
	// zeroSubnet: only ECS options of SOURCE PREFIX-LENGTH 0, which go
	// upstream as they came.
	zeroSubnet
	// hiddenSubnet: an ECS option with address bits, which goes upstream
	// as /0 under hide; the resolver may then echo no ECS option where it
	// echoed the client's.
	hiddenSubnet
	// malformedSubnet: an ECS option that breaks RFC 7871 §6, which
	// dotproxy answers FORMERR under hide.
	malformedSubnet
	// keptSubnet: a subnet in a query that cannot be rewritten (signed),
	// which dotproxy answers REFUSED under hide.
	keptSubnet
)

// maxUDP is the largest UDP answer the client accepts: 512 without EDNS,
// else max(512, advertised size) (RFC 1035 §4.2.1, RFC 6891 §6.2.5).
func (q *query) maxUDP() int {
	if !q.edns {
		return 512
	}
	return max(512, int(q.udpSize))
}

// variant is one way of asking a question: the EDNS(0) part and the header
// bits.
type variant struct {
	name    string
	edns    bool
	size    uint16
	do, cd  bool
	ad      bool
	norec   bool
	version uint8
	z       uint16 // the OPT TTL's Z bits below DO
	opts    []dns.EDNS0
}

const (
	optSubnet    = 8
	optPadding   = 12
	optKeepalive = 11
)

func local(code uint16, data string) dns.EDNS0 {
	return &dns.EDNS0_LOCAL{Code: code, Data: []byte(data)}
}

// variants are crossed with every base question.
var variants = []variant{
	{name: "noedns"},
	{name: "edns0", edns: true, size: 0},
	{name: "edns512", edns: true, size: 512},
	{name: "edns1232", edns: true, size: 1232},
	{name: "edns4096", edns: true, size: 4096},
	{name: "edns1232+do", edns: true, size: 1232, do: true},
	{name: "edns4096+do+cd", edns: true, size: 4096, do: true, cd: true},
	{name: "edns1232+opt65001", edns: true, size: 1232, opts: []dns.EDNS0{local(65001, "dotproxy")}},
	{name: "noedns+cd", cd: true},
}

type question struct {
	name  string
	qtype uint16
	class uint16
}

func baseQuestions() []question {
	p, s := plainZone, signedZone
	in := func(name string, t uint16) question { return question{name, t, dns.ClassINET} }
	qs := []question{
		in("www."+p, dns.TypeA),
		in("www."+p, dns.TypeAAAA),
		in("mail."+p, dns.TypeMX),
		in("c1."+p, dns.TypeA),            // CNAME chain
		in("tosigned."+p, dns.TypeA),      // CNAME into the signed zone
		in("nosuch."+p, dns.TypeA),        // NXDOMAIN with SOA
		in("www."+p, dns.TypeMX),          // NODATA
		in("www."+p, dns.TypeANY),         // ANY
		in("_sip._udp."+p, dns.TypeSRV),   // SRV
		in("quote."+p, dns.TypeTXT),       // TXT with spaces, ';' and ""
		in("unknown."+p, 65280),           // RFC 3597 type
		in(name255(p, "long"), dns.TypeA), // 255-octet name
		in(p, dns.TypeSOA),
		in("www."+s, dns.TypeA),
		in("c1."+s, dns.TypeA),       // signed CNAME chain
		in("nosuch."+s, dns.TypeA),   // NXDOMAIN with NSEC proof under DO
		in("www."+s, dns.TypeMX),     // NODATA with NSEC under DO
		in(s, dns.TypeDNSKEY),        // DNSKEY
		in("child."+s, dns.TypeDS),   // DS
		in("x.wild."+s, dns.TypeTXT), // wildcard
		in(name255(s, "long"), dns.TypeA),
		in(s, dns.TypeANY),
	}
	for _, kb := range txtSizes {
		qs = append(qs, in(fmt.Sprintf("txt%dk.%s", kb, p), dns.TypeTXT))
	}
	for _, kb := range txtSizes[:3] {
		qs = append(qs, in(fmt.Sprintf("txt%dk.%s", kb, s), dns.TypeTXT))
	}
	return qs
}

// build packs q asked the way v says. Names are packed as given, without
// compression, so their case survives (0x20).
func build(q question, v variant) *dns.Msg {
	m := new(dns.Msg)
	m.Question = []dns.Question{{Name: q.name, Qtype: q.qtype, Qclass: q.class}}
	m.RecursionDesired = !v.norec
	m.CheckingDisabled = v.cd
	m.AuthenticatedData = v.ad
	if v.edns {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(v.size)
		o.SetVersion(v.version)
		o.Hdr.Ttl |= uint32(v.z)
		if v.do {
			o.SetDo()
		}
		o.Option = v.opts
		m.Extra = append(m.Extra, o)
	}
	return m
}

func typeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

func shortName(name string) string {
	if len(name) > 40 {
		return fmt.Sprintf("%s…(%d chars)", name[:16], len(name))
	}
	return name
}

func fromMsg(desc string, m *dns.Msg, k kind) query {
	wire, err := m.Pack()
	if err != nil {
		panic(fmt.Sprintf("corpus: %s: %v", desc, err))
	}
	q := query{desc: desc, wire: wire, kind: k}
	q.fill()
	return q
}

// fill reads question, edns and udpSize from the wire form.
func (q *query) fill() {
	w := q.wire
	if len(w) < 12 {
		return
	}
	qd := binary.BigEndian.Uint16(w[4:])
	off := 12
	if qd == 1 {
		if end, ok := skipName(w, off); ok && end+4 <= len(w) {
			q.question = w[off : end+4]
		}
	}
	if s, e, ok := findOPT(w); ok {
		q.edns = true
		q.udpSize = binary.BigEndian.Uint16(w[s+3:])
		q.subnet = subnetOf(w[s+11 : e])
	}
}

// subnetOf reads the ECS options of an OPT record's RDATA, checking each
// against RFC 7871 §6: FAMILY 1 or 2 (or 0 with no prefix), SOURCE
// PREFIX-LENGTH within the family, SCOPE PREFIX-LENGTH 0, exactly the
// ADDRESS octets the prefix covers, no bit set past it.
func subnetOf(rd []byte) subnetKind {
	k := noSubnet
	for o := 0; o+4 <= len(rd); {
		n := int(binary.BigEndian.Uint16(rd[o+2:]))
		if o+4+n > len(rd) {
			return max(k, malformedSubnet)
		}
		if binary.BigEndian.Uint16(rd[o:]) == optSubnet {
			k = max(k, subnetData(rd[o+4:o+4+n]))
		}
		o += 4 + n
	}
	return k
}

func subnetData(d []byte) subnetKind {
	if len(d) < 4 {
		return malformedSubnet
	}
	bits := map[uint16]int{0: 0, 1: 32, 2: 128}
	limit, known := bits[binary.BigEndian.Uint16(d)]
	source, addr := int(d[2]), d[4:]
	switch {
	case !known || source > limit || d[3] != 0 || len(addr) != (source+7)/8:
		return malformedSubnet
	case source%8 != 0 && addr[len(addr)-1]<<(source%8) != 0:
		return malformedSubnet
	case source == 0:
		return zeroSubnet
	}
	return hiddenSubnet
}

func header(id, flags, qd, an, ns, ar uint16) []byte {
	h := make([]byte, 12)
	binary.BigEndian.PutUint16(h[0:], id)
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint16(h[4:], qd)
	binary.BigEndian.PutUint16(h[6:], an)
	binary.BigEndian.PutUint16(h[8:], ns)
	binary.BigEndian.PutUint16(h[10:], ar)
	return h
}

func wireName(name string) []byte {
	buf := make([]byte, 512)
	n, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil {
		panic(err)
	}
	return buf[:n]
}

// corpus returns every query, in a fixed order.
func corpus() []query {
	var qs []query
	for _, b := range baseQuestions() {
		for _, v := range variants {
			desc := fmt.Sprintf("%s/%s %s", shortName(b.name), typeName(b.qtype), v.name)
			qs = append(qs, fromMsg(desc, build(b, v), wellFormed))
		}
	}
	p, s := plainZone, signedZone
	in := func(name string, t uint16) question { return question{name, t, dns.ClassINET} }
	ch := func(name string, t uint16) question { return question{name, t, dns.ClassCHAOS} }
	noedns, e1232 := variant{name: "noedns"}, variant{name: "edns1232", edns: true, size: 1232}
	do := variant{name: "edns1232+do", edns: true, size: 1232, do: true}
	do512 := variant{name: "edns512+do", edns: true, size: 512, do: true}
	special := []struct {
		q question
		v variant
	}{
		// 0x20: mixed case must come back as asked.
		{in("WwW.PlAiN.TeSt.", dns.TypeA), noedns},
		{in("WwW.PlAiN.TeSt.", dns.TypeA), e1232},
		{in("MAIL.PLAIN.TEST.", dns.TypeMX), noedns},
		{in("TXT2K.PLAIN.TEST.", dns.TypeTXT), noedns}, // truncated: case kept
		{in("wWw.SiGnEd.TeSt.", dns.TypeA), do},
		{in("C1.sIgNeD.tEsT.", dns.TypeA), do},
		{in("NoSuCh.SiGnEd.TeSt.", dns.TypeA), do},
		{in(strings.ToUpper(name255(s, "long")), dns.TypeA), do},
		// Odd classes.
		{ch("version.bind.", dns.TypeTXT), noedns},
		{ch("version.bind.", dns.TypeTXT), e1232},
		{ch("hostname.bind.", dns.TypeTXT), noedns},
		{ch("id.server.", dns.TypeTXT), noedns},
		{ch("version.server.", dns.TypeTXT), e1232},
		{ch("version.bind.", dns.TypeA), noedns},
		{ch("www."+p, dns.TypeA), noedns},
		{question{"version.bind.", dns.TypeTXT, dns.ClassHESIOD}, noedns},
		{question{"www." + p, dns.TypeA, dns.ClassANY}, noedns},
		// DNSSEC.
		{in("www."+s, dns.TypeRRSIG), do},
		{in(s, dns.TypeNSEC), do},
		{in("www."+s, dns.TypeNSEC), do},
		{in(s, dns.TypeDNSKEY), do512},
		{in("child."+s, dns.TypeDS), do512},
		{in("txt2k."+s, dns.TypeTXT), do512},
		{in("www."+s, dns.TypeA), variant{name: "edns1232+ad", edns: true, size: 1232, ad: true}},
		{in("www."+s, dns.TypeA), variant{name: "noedns+ad", ad: true}},
		{in("www."+s, dns.TypeA), variant{name: "edns1232+do+rd0", edns: true, size: 1232, do: true, norec: true}},
		{in("www."+p, dns.TypeA), variant{name: "noedns+rd0", norec: true}},
		{in("www."+s, dns.TypeA), variant{name: "edns1232+cd", edns: true, size: 1232, cd: true}},
		// EDNS corners.
		{in("www."+p, dns.TypeA), variant{name: "edns-version1", edns: true, size: 1232, version: 1}},
		{in("www."+s, dns.TypeA), variant{name: "edns-version1+do", edns: true, size: 1232, version: 1, do: true}},
		{in("www."+p, dns.TypeA), variant{name: "edns1232+zbit", edns: true, size: 1232, z: 0x0001}},
		{in("txt1k."+p, dns.TypeTXT), variant{name: "edns65535", edns: true, size: 65535}},
		{in("txt1k."+p, dns.TypeTXT), variant{name: "edns511", edns: true, size: 511}},
		{in("txt1k."+p, dns.TypeTXT), variant{name: "edns1", edns: true, size: 1}},
		{in("www."+p, dns.TypeA), variant{name: "edns1232+nsid", edns: true, size: 1232,
			opts: []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID}}}},
		{in("www."+p, dns.TypeA), variant{name: "edns1232+cookie", edns: true, size: 1232,
			opts: []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}}},
		{in("www."+p, dns.TypeA), variant{name: "edns1232+ecs", edns: true, size: 1232,
			opts: []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{192, 0, 2, 0}}}}},
		{in("www."+s, dns.TypeA), variant{name: "edns4096+do+3opts", edns: true, size: 4096, do: true,
			opts: []dns.EDNS0{local(65001, ""), local(65002, "x"), local(65535, strings.Repeat("z", 300))}}},
		{in("txt1k."+p, dns.TypeTXT), variant{name: "edns1232+bigopt", edns: true, size: 1232,
			opts: []dns.EDNS0{local(65003, strings.Repeat("o", 1000))}}},
	}
	for _, sp := range special {
		desc := fmt.Sprintf("%s/%s %s %s", shortName(sp.q.name), typeName(sp.q.qtype),
			dns.ClassToString[sp.q.class], sp.v.name)
		qs = append(qs, fromMsg(desc, build(sp.q, sp.v), wellFormed))
	}

	// The client's own Padding and edns-tcp-keepalive options.
	hop := []struct {
		desc string
		q    question
		opts []dns.EDNS0
		do   bool
	}{
		{"client padding", in("www."+p, dns.TypeA), []dns.EDNS0{&dns.EDNS0_PADDING{Padding: make([]byte, 40)}}, false},
		{"client padding", in("txt1k."+p, dns.TypeTXT), []dns.EDNS0{&dns.EDNS0_PADDING{Padding: make([]byte, 40)}}, false},
		{"client keepalive", in("www."+p, dns.TypeA), []dns.EDNS0{&dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE}}, false},
		{"client keepalive+padding", in("www."+s, dns.TypeA), []dns.EDNS0{
			&dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE}, local(65001, "mid"),
			&dns.EDNS0_PADDING{Padding: make([]byte, 7)}}, true},
	}
	for _, h := range hop {
		v := variant{name: "edns1232+" + h.desc, edns: true, size: 1232, do: h.do, opts: h.opts}
		q := fromMsg(fmt.Sprintf("%s/%s %s", shortName(h.q.name), typeName(h.q.qtype), v.name), build(h.q, v), wellFormed)
		q.hop = true
		qs = append(qs, q)
	}

	// Client subnet options (RFC 7871), well formed and not: hidden (sent
	// as /0) under DOTPROXY_CLIENT_SUBNET=hide, or answered FORMERR.
	v4 := func(bits uint8, a ...byte) dns.EDNS0 {
		return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: bits, Address: net.IP(a)}
	}
	v6 := func(bits uint8, addr string) dns.EDNS0 {
		return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: bits, Address: net.ParseIP(addr)}
	}
	subnets := []struct {
		desc string
		q    question
		do   bool
		opts []dns.EDNS0
	}{
		{"ecs ipv4/24", in("www."+p, dns.TypeA), false, []dns.EDNS0{v4(24, 192, 0, 2, 0)}},
		{"ecs ipv4/24", in("www."+s, dns.TypeA), true, []dns.EDNS0{v4(24, 192, 0, 2, 0)}},
		{"ecs ipv4/32", in("c1."+s, dns.TypeA), true, []dns.EDNS0{v4(32, 198, 51, 100, 7)}},
		{"ecs ipv6/56", in("www."+p, dns.TypeAAAA), false, []dns.EDNS0{v6(56, "2001:db8:1:2300::")}},
		{"ecs ipv6/56", in("www."+s, dns.TypeAAAA), true, []dns.EDNS0{v6(56, "2001:db8:1:2300::")}},
		{"ecs ipv6/56", in("nosuch."+s, dns.TypeA), true, []dns.EDNS0{v6(56, "2001:db8:1:2300::")}},
		{"ecs ipv4/0", in("www."+p, dns.TypeA), false, []dns.EDNS0{v4(0, 0, 0, 0, 0)}},
		{"ecs ipv6/0", in("www."+s, dns.TypeA), true, []dns.EDNS0{v6(0, "::")}},
		{"ecs ipv4/24+ipv6/56", in("www."+s, dns.TypeA), true, []dns.EDNS0{v4(24, 192, 0, 2, 0), v6(56, "2001:db8::")}},
		{"ecs ipv4/24+cookie", in("mail."+p, dns.TypeMX), false, []dns.EDNS0{
			&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}, v4(24, 192, 0, 2, 0)}},
		{"ecs ipv6/48", in("txt2k."+p, dns.TypeTXT), false, []dns.EDNS0{v6(48, "2001:db8:7::")}}, // truncated over UDP
		{"ecs malformed: scope set", in("www."+p, dns.TypeA), false, []dns.EDNS0{local(optSubnet, "\x00\x01\x18\x18\xc0\x00\x02")}},
		{"ecs malformed: ipv4/33", in("www."+s, dns.TypeA), true, []dns.EDNS0{local(optSubnet, "\x00\x01\x21\x00\xc0\x00\x02\x01\x00")}},
		{"ecs malformed: bits past the prefix", in("www."+p, dns.TypeA), false, []dns.EDNS0{local(optSubnet, "\x00\x01\x14\x00\xc6\x33\x6f")}},
		{"ecs malformed: family 3", in("www."+p, dns.TypeA), false, []dns.EDNS0{local(optSubnet, "\x00\x03\x00\x00")}},
	}
	for _, e := range subnets {
		v := variant{name: "edns1232+" + e.desc, edns: true, size: 1232, do: e.do, opts: e.opts}
		qs = append(qs, fromMsg(fmt.Sprintf("%s/%s %s", shortName(e.q.name), typeName(e.q.qtype), v.name), build(e.q, v), wellFormed))
	}
	{
		// Signed: the subnet cannot be taken out without breaking the
		// signature, so dotproxy refuses (RFC 7871 §7.1.1).
		m := build(in("www."+p, dns.TypeA), variant{edns: true, size: 1232, opts: []dns.EDNS0{v4(24, 192, 0, 2, 0)}})
		m.SetTsig("key.", dns.HmacSHA256, 300, 1700000000)
		wire, _, err := dns.TsigGenerate(m, "c2VjcmV0c2VjcmV0", "", false)
		if err != nil {
			panic(err)
		}
		q := query{desc: "www." + p + "/A edns1232+ecs ipv4/24, TSIG-signed", wire: wire, kind: wellFormed}
		q.fill()
		q.subnet = keptSubnet
		qs = append(qs, q)
	}

	// Other opcodes and section counts that are legal on the wire.
	opcode := func(op int, name string, t uint16) query {
		m := build(in(name, t), noedns)
		m.Opcode = op
		return fromMsg(fmt.Sprintf("%s/%s opcode %d", name, typeName(t), op), m, wellFormed)
	}
	qs = append(qs,
		opcode(dns.OpcodeStatus, "www."+p, dns.TypeA),
		opcode(dns.OpcodeNotify, p, dns.TypeSOA),
		opcode(dns.OpcodeUpdate, p, dns.TypeSOA),
		opcode(3, "www."+p, dns.TypeA),
	)
	{
		m := new(dns.Msg)
		m.RecursionDesired = true
		qs = append(qs, fromMsg("no question, no EDNS", m, wellFormed))
		m.SetEdns0(1232, false)
		m.Extra[0].(*dns.OPT).Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "a1b2c3d4e5f60718"}}
		qs = append(qs, fromMsg("no question, EDNS cookie only", m, wellFormed))
	}
	{
		m := build(in("www."+p, dns.TypeA), noedns)
		a, _ := dns.NewRR("www." + p + " 60 IN A 192.0.2.99")
		m.Answer = []dns.RR{a}
		qs = append(qs, fromMsg("www."+p+"/A with a record in the answer section", m, wellFormed))
	}

	// More than one question.
	multi := func(desc string, v variant, qq ...question) query {
		m := build(qq[0], v)
		for _, x := range qq[1:] {
			m.Question = append(m.Question, dns.Question{Name: x.name, Qtype: x.qtype, Qclass: x.class})
		}
		return fromMsg(desc, m, multiQuestion)
	}
	qs = append(qs,
		multi("2 questions: www A + www AAAA", noedns, in("www."+p, dns.TypeA), in("www."+p, dns.TypeAAAA)),
		multi("2 questions: www A + mail MX, EDNS", e1232, in("www."+p, dns.TypeA), in("mail."+p, dns.TypeMX)),
		multi("2 identical questions", noedns, in("www."+s, dns.TypeA), in("www."+s, dns.TypeA)),
		multi("3 questions, DO", do, in("www."+s, dns.TypeA), in("c1."+s, dns.TypeA), in("nosuch."+p, dns.TypeA)),
	)

	// Malformed queries, built by hand.
	rd := uint16(0x0100)
	www := wireName("www." + p)
	qtail := []byte{0, 1, 0, 1}
	optRR := []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, x := range parts {
			b = append(b, x...)
		}
		return b
	}
	bad := func(desc string, k kind, wire []byte) query {
		q := query{desc: desc, wire: wire, kind: k}
		q.fill()
		return q
	}
	long := make([]byte, 0, 300)
	for len(long) < 256 {
		long = append(long, 63)
		long = append(long, []byte(strings.Repeat("m", 63))...)
	}
	long = append(long, 0) // 257 octets
	garbage := make([]byte, 48)
	for i := range garbage {
		garbage[i] = byte(i*73 + 11)
	}
	garbage[2] &^= 0x80 // not a response, so it is not merely dropped
	qs = append(qs,
		bad("malformed: QDCOUNT 1, no question", malformed, header(0, rd, 1, 0, 0, 0)),
		bad("malformed: name cut inside a label", malformed, cat(header(0, rd, 1, 0, 0, 0), www[:6])),
		bad("malformed: question without type and class", malformed, cat(header(0, rd, 1, 0, 0, 0), www)),
		bad("malformed: question with half a class", malformed, cat(header(0, rd, 1, 0, 0, 0), www, qtail[:3])),
		bad("malformed: label type 0x40", malformed, cat(header(0, rd, 1, 0, 0, 0), []byte{0x41, 'x', 0}, qtail)),
		bad("malformed: compression loop in the question", malformed, cat(header(0, rd, 1, 0, 0, 0), []byte{0xc0, 12}, qtail)),
		bad("malformed: 257-octet name", malformed, cat(header(0, rd, 1, 0, 0, 0), long, qtail)),
		bad("malformed: ANCOUNT 1, no record", malformed, cat(header(0, rd, 1, 1, 0, 0), www, qtail)),
		bad("malformed: two OPT records", malformed, cat(header(0, rd, 1, 0, 0, 2), www, qtail, optRR, optRR)),
		bad("malformed: OPT RDLENGTH past the end", malformed, cat(header(0, rd, 1, 0, 0, 1), www, qtail,
			[]byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 40, 0, 12, 0, 2})),
		bad("malformed: 4 trailing bytes after the question", malformed, cat(header(0, rd, 1, 0, 0, 0), www, qtail, []byte{1, 2, 3, 4})),
		bad("malformed: 48 bytes of garbage", malformed, garbage),
		bad("not a query: 11 bytes", notQuery, header(0, rd, 1, 0, 0, 0)[:11]),
		bad("not a query: QR set", notQuery, cat(header(0, rd|0x8000, 1, 0, 0, 0), www, qtail)),
	)
	return qs
}
