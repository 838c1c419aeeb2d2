// Command transparency is the differential transparency corpus of
// e2e/transparency.sh: it asks a few hundred generated queries once through
// dotproxy over UDP, once over TCP, and once straight to the same resolver
// over plain TCP, and checks that dotproxy's answers are the resolver's byte
// for byte apart from the ID, truncated exactly where RFC 1035 and RFC 6891
// demand, or else one of dotproxy's documented own answers.
//
//	transparency zones DIR     write the zone data unbound serves
//	transparency run -proxy ADDR -direct ADDR [-refused ADDR] [-dead ADDR] [-subnet hide|pass] [-only-subnet]
//
// run prints one summary line and the first differences in full, and exits
// 1 on any unintended difference, 2 on a broken set-up.
package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "zones":
		if len(os.Args) != 3 {
			usage()
		}
		if err := writeZones(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "transparency:", err)
			os.Exit(2)
		}
	case "run":
		os.Exit(run(os.Args[2:]))
	case "list":
		for i, q := range corpus() {
			fmt.Printf("%3d %s\n", i, q.desc)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: transparency zones DIR | transparency list | transparency run -proxy ADDR -direct ADDR [-refused ADDR] [-dead ADDR] [-subnet hide|pass] [-only-subnet]")
	os.Exit(2)
}

// result is one judged answer.
type result struct {
	q         *query
	transport string
	via       string // which dotproxy: main, refused, dead
	id        uint16
	got       []byte
	v         verdict
}

type runner struct {
	timeout time.Duration
	nextID  uint16
}

func (r *runner) id() uint16 {
	r.nextID = r.nextID*25173 + 13849 // deterministic, never repeats within 65536
	return r.nextID
}

func (r *runner) ask(transport, addr string, wire []byte, id uint16) []byte {
	var got []byte
	if transport == "udp" {
		got, _ = exchangeUDP(addr, withID(wire, id), r.timeout)
	} else {
		got, _ = exchangeTCP(addr, withID(wire, id), r.timeout)
	}
	return got
}

func run(args []string) int {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	proxy := fs.String("proxy", "", "dotproxy's listen address (UDP and TCP)")
	direct := fs.String("direct", "", "the resolver's plain-TCP address")
	refused := fs.String("refused", "", "a dotproxy whose DOTPROXY_ALLOW excludes this client (optional)")
	dead := fs.String("dead", "", "a dotproxy whose only upstream is down (optional)")
	show := fs.Int("show", 3, "differences shown in full")
	verbose := fs.Bool("v", false, "print every verdict")
	timeout := fs.Duration("timeout", 1500*time.Millisecond, "wait for one answer")
	subnet := fs.String("subnet", "hide", "the dotproxy's DOTPROXY_CLIENT_SUBNET: hide or pass")
	onlySubnet := fs.Bool("only-subnet", false, "ask only the queries that carry an EDNS Client Subnet option")
	if err := fs.Parse(args); err != nil || *proxy == "" || *direct == "" || *subnet != "hide" && *subnet != "pass" {
		usage()
	}
	hide := *subnet == "hide"
	qs := corpus()
	if *onlySubnet {
		var sub []query
		for _, q := range qs {
			if q.subnet != noSubnet {
				sub = append(sub, q)
			}
		}
		qs = sub
	}
	r := &runner{timeout: *timeout, nextID: 1}

	// Warm the resolver's cache so that each comparison below sees the
	// same, final cache state (ANY and DNSSEC answers depend on it).
	for i := range qs {
		if qs[i].kind == wellFormed {
			r.ask("tcp", *direct, qs[i].wire, r.id())
		}
	}

	var results []result
	var directs [][]byte
	for i := range qs {
		q := &qs[i]
		uid, tid := r.id(), r.id()
		gotU := r.ask("udp", *proxy, q.wire, uid)
		gotT := r.ask("tcp", *proxy, q.wire, tid)
		d := r.ask("tcp", *direct, q.wire, r.id())
		directs = append(directs, d)
		results = append(results,
			result{q: q, transport: "udp", via: "main", id: uid, got: gotU, v: compare(q, true, hide, uid, gotU, d)},
			result{q: q, transport: "tcp", via: "main", id: tid, got: gotT, v: compare(q, false, hide, tid, gotT, d)})
	}
	if bad := setupProblem(qs, directs, *onlySubnet); bad != "" {
		fmt.Println("transparency: set-up broken:", bad)
		return 2
	}

	// dotproxy's own REFUSED and SERVFAIL, on a sample of the corpus.
	own := func(addr, via, rule string, rcode, every int) {
		for i := 0; i < len(qs); i += every {
			q := &qs[i]
			// dotproxy answers a client subnet it cannot hide itself
			// (FORMERR, REFUSED), whatever its upstream: no sample of
			// its SERVFAIL.
			if q.kind != wellFormed || q.question == nil || q.subnet >= malformedSubnet {
				continue
			}
			for _, t := range []string{"udp", "tcp"} {
				id := r.id()
				got := r.ask(t, addr, q.wire, id)
				v := verdict{outcome: intended, rule: rule}
				switch {
				case got == nil:
					v = verdict{outcome: differ, reason: "no answer from dotproxy"}
				case len(got) < 12 || got[0] != byte(id>>8) || got[1] != byte(id):
					v = verdict{outcome: differ, reason: "answer ID or length wrong"}
				default:
					if why := ownReply(q, got, rcode); why != "" {
						v = verdict{outcome: differ, reason: fmt.Sprintf("%s: %s", rule, why)}
					}
				}
				results = append(results, result{q: q, transport: t, via: via, id: id, got: got, v: v})
			}
		}
	}
	if *refused != "" {
		own(*refused, "refused", ruleRefused, rcodeRefused, 9)
	}
	if *dead != "" {
		own(*dead, "dead", ruleServFail, rcodeServFail, 37)
	}
	if *verbose {
		names := [...]string{"identical", "truncated", "intended", "DIFFER"}
		for _, res := range results {
			fmt.Printf("%-9s %s %-7s %s %s%s\n", names[res.v.outcome], res.transport, res.via, res.q.desc, res.v.rule, res.v.reason)
		}
	}
	return report(qs, results, directs, *show)
}

// setupProblem catches a resolver that does not serve the corpus as meant
// (every comparison could pass on SERVFAILs): the first plain and the first
// signed question must resolve, the signed one with AD under DO; of the
// client subnet queries alone, the first of each zone.
func setupProblem(qs []query, directs [][]byte, onlySubnet bool) string {
	probes := map[string]bool{ // desc: AD required
		"www." + plainZone + "/A noedns":       false,
		"www." + signedZone + "/A edns1232+do": true,
	}
	if onlySubnet {
		probes = map[string]bool{
			"www." + plainZone + "/A edns1232+ecs ipv4/24":  false,
			"www." + signedZone + "/A edns1232+ecs ipv4/24": true,
		}
	}
	for i, d := range directs {
		needAD, ok := probes[qs[i].desc]
		if !ok {
			continue
		}
		delete(probes, qs[i].desc)
		switch {
		case len(d) < 12:
			return qs[i].desc + ": no answer from the resolver"
		case flags(d)&0xF != 0:
			return fmt.Sprintf("%s: rcode %d from the resolver", qs[i].desc, flags(d)&0xF)
		case needAD && flags(d)&0x0020 == 0:
			return qs[i].desc + ": no AD bit: the signed zone does not validate"
		}
	}
	for desc := range probes {
		return desc + ": not in the corpus"
	}
	return ""
}

func report(qs []query, results []result, directs [][]byte, show int) int {
	var n [4]int
	rules := map[string]int{}
	var diffs []result
	for _, res := range results {
		n[res.v.outcome]++
		switch res.v.outcome {
		case intended:
			rules[res.v.rule]++
		case differ:
			diffs = append(diffs, res)
		}
	}
	var parts []string
	for rule, c := range rules {
		parts = append(parts, fmt.Sprintf("%d %s", c, rule))
	}
	sort.Strings(parts)
	coverage(qs, directs)
	for i, d := range diffs {
		if i == 40 {
			fmt.Printf("DIFF  ... and %d more\n", len(diffs)-i)
			break
		}
		fmt.Printf("DIFF  %s %s (%s): %s\n", d.transport, d.q.desc, d.via, d.v.reason)
	}
	for i, d := range diffs[:min(show, len(diffs))] {
		fmt.Printf("\n--- difference %d of %d: %s over %s through the %q dotproxy\n", i+1, len(diffs), d.q.desc, d.transport, d.via)
		fmt.Printf("    %s\n", d.v.reason)
		dump("query", d.q.wire)
		dump("dotproxy's answer", d.got)
		dump("expected (the resolver's answer over TCP)", d.v.want)
	}
	fmt.Printf("\ntransparency: %d queries, %d answers: %d identical, %d truncated as RFC 1035/6891 require, %d differ (%d intended: %s)\n",
		len(qs), len(results), n[identical], n[truncated], n[differ], n[intended], strings.Join(parts, ", "))
	if n[differ] > 0 {
		return 1
	}
	return 0
}

// coverage prints what the resolver's own answers contained, so that a
// reader can see the corpus exercises what it claims.
func coverage(qs []query, directs [][]byte) {
	rcodes := map[string]int{}
	var ad, rrsig, over512, biggest, silent int
	for _, d := range directs {
		if d == nil {
			silent++
			continue
		}
		m := new(dns.Msg)
		if err := m.Unpack(d); err != nil {
			rcodes["unparsable"]++
			continue
		}
		rcode := dns.RcodeToString[m.Rcode]
		if m.Rcode == dns.RcodeBadVers && m.IsEdns0() != nil {
			rcode = "BADVERS" // 16 is BADSIG only in TSIG
		}
		rcodes[rcode]++
		if m.AuthenticatedData {
			ad++
		}
		for _, rr := range append(m.Answer, m.Ns...) {
			if rr.Header().Rrtype == dns.TypeRRSIG {
				rrsig++
				break
			}
		}
		if len(d) > 512 {
			over512++
		}
		biggest = max(biggest, len(d))
	}
	var rc []string
	for k, v := range rcodes {
		rc = append(rc, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(rc)
	fmt.Printf("resolver's answers: %s, no answer %d; AD set %d, with RRSIG %d, over 512 bytes %d, largest %d bytes\n",
		strings.Join(rc, ", "), silent, ad, rrsig, over512, biggest)
}

func dump(label string, m []byte) {
	if m == nil {
		fmt.Printf("  %s: none (no answer)\n", label)
		return
	}
	fmt.Printf("  %s: %d bytes\n", label, len(m))
	const maxHex = 1024
	h := hex.EncodeToString(m[:min(len(m), maxHex)])
	for i := 0; i < len(h); i += 64 {
		fmt.Printf("    %s\n", h[i:min(len(h), i+64)])
	}
	if len(m) > maxHex {
		fmt.Printf("    ... (%d more bytes)\n", len(m)-maxHex)
	}
	msg := new(dns.Msg)
	if err := msg.Unpack(m); err != nil {
		fmt.Printf("    (miekg/dns cannot unpack it: %v)\n", err)
		return
	}
	lines := strings.Split(strings.TrimRight(msg.String(), "\n"), "\n")
	for i, l := range lines {
		if i == 60 {
			fmt.Printf("    ... (%d more lines)\n", len(lines)-i)
			break
		}
		fmt.Printf("    | %s\n", l)
	}
}
