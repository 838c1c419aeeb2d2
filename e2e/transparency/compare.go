package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The outcomes of one comparison.
type outcome int

const (
	identical outcome = iota // byte for byte apart from the ID
	truncated                // a UDP answer truncated as RFC 1035/6891 demand
	intended                 // dotproxy's documented answer (see rule)
	differ
)

// The rules under which an answer that is not the resolver's counts as
// intended. They are what the README's "What dotproxy changes" list says.
const (
	ruleFormErr   = "FORMERR by dotproxy for malformed queries"
	ruleMultiQ    = "FORMERR by dotproxy for more than one question"
	ruleDropped   = "no answer by dotproxy to a packet that is not a query"
	ruleRefused   = "REFUSED outside DOTPROXY_ALLOW"
	ruleServFail  = "SERVFAIL by dotproxy when no upstream answers"
	ruleHopOption = "Padding/edns-tcp-keepalive options removed from answers"
	// DOTPROXY_CLIENT_SUBNET=hide: the resolver saw the client's subnet as
	// /0. Where it echoed the client's option straight but not the /0
	// (unbound's subnetcache echoes only answers it builds, not those from
	// its message cache, which the corpus warms first), the answer is the
	// resolver's without the echo; RFC 7871 §7.3 reads no option as /0.
	ruleSubnetEcho    = "no ECS echo: the resolver saw the client's subnet as /0"
	ruleSubnetFormErr = "FORMERR by dotproxy for a malformed client subnet option"
	ruleSubnetRefused = "REFUSED by dotproxy for a client subnet it cannot hide"
)

const (
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeRefused  = 5
)

type verdict struct {
	outcome outcome
	rule    string // for intended
	reason  string // for differ
	want    []byte // what was expected, for the report (nil: silence)
}

type section struct{ qd, an, ns, ar int }

func counts(m []byte) section {
	return section{
		int(binary.BigEndian.Uint16(m[4:])), int(binary.BigEndian.Uint16(m[6:])),
		int(binary.BigEndian.Uint16(m[8:])), int(binary.BigEndian.Uint16(m[10:])),
	}
}

func flags(m []byte) uint16 { return binary.BigEndian.Uint16(m[2:]) }

// sameApartFromID compares two messages from byte 2 on.
func sameApartFromID(a, b []byte) bool {
	return len(a) >= 2 && len(b) >= 2 && bytes.Equal(a[2:], b[2:])
}

// compare judges got, dotproxy's answer over transport udp or tcp to q sent
// with ID id, against direct, the resolver's own answer to q over TCP.
// hide says that dotproxy hides client subnets (DOTPROXY_CLIENT_SUBNET).
func compare(q *query, udp, hide bool, id uint16, got, direct []byte) verdict {
	want := direct
	if got == nil && direct == nil {
		return verdict{outcome: identical}
	}
	if got != nil && (len(got) < 12 || binary.BigEndian.Uint16(got) != id) {
		return verdict{outcome: differ, reason: fmt.Sprintf("answer ID or length wrong (%d bytes)", len(got)), want: want}
	}
	if got != nil && direct != nil {
		type alt struct {
			w    []byte
			rule string // "" for the resolver's own answer
		}
		alts := []alt{{direct, ""}}
		if q.hop {
			alts = append(alts, alt{withoutOptions(direct, optPadding, optKeepalive), ruleHopOption})
		}
		if hide && q.subnet == hiddenSubnet {
			alts = append(alts, alt{withoutOptions(direct, optSubnet), ruleSubnetEcho})
		}
		for i, a := range alts {
			w, rule := a.w, a.rule
			if udp && len(w) > q.maxUDP() {
				if why := truncationProblem(q, got, w); why != "" {
					if i+1 < len(alts) {
						continue
					}
					return verdict{outcome: differ, reason: fmt.Sprintf("direct answer is %d bytes, over the client's %d: %s", len(w), q.maxUDP(), why), want: w}
				}
				if rule != "" {
					return verdict{outcome: intended, rule: rule}
				}
				return verdict{outcome: truncated}
			}
			if sameApartFromID(got, w) {
				if rule != "" {
					return verdict{outcome: intended, rule: rule}
				}
				return verdict{outcome: identical}
			}
		}
	}
	if hide && got != nil {
		switch {
		case q.subnet == malformedSubnet && ownFormErr(q, got):
			return verdict{outcome: intended, rule: ruleSubnetFormErr}
		case q.subnet == keptSubnet && ownReply(q, got, rcodeRefused) == "":
			return verdict{outcome: intended, rule: ruleSubnetRefused}
		}
	}
	switch q.kind {
	case malformed, multiQuestion:
		if got != nil && ownFormErr(q, got) {
			if q.kind == multiQuestion {
				return verdict{outcome: intended, rule: ruleMultiQ}
			}
			return verdict{outcome: intended, rule: ruleFormErr}
		}
	case notQuery:
		if got == nil {
			return verdict{outcome: intended, rule: ruleDropped}
		}
	}
	switch {
	case got == nil:
		return verdict{outcome: differ, reason: "no answer from dotproxy", want: want}
	case direct == nil:
		return verdict{outcome: differ, reason: "dotproxy answered, the resolver did not", want: want}
	}
	if udp && flags(got)&flagTC != 0 && len(direct) <= q.maxUDP() {
		return verdict{outcome: differ, want: want, reason: fmt.Sprintf(
			"truncated (TC, %d bytes) although the resolver's answer (%d bytes) fits the client's %d", len(got), len(direct), q.maxUDP())}
	}
	return verdict{outcome: differ, reason: firstDifference(got, direct), want: want}
}

// truncationProblem checks a reply that must be truncated (RFC 1035 §4.2.1,
// RFC 2181 §9, RFC 6891 §7): the resolver's header with TC set, the
// question echoed, no records but the OPT record, present exactly when the
// query had one and carrying the answer's extended RCODE, version and DO.
// It returns "" when the reply is right.
func truncationProblem(q *query, got, full []byte) string {
	if len(got) > q.maxUDP() {
		return fmt.Sprintf("answer not truncated (%d bytes)", len(got))
	}
	if f := flags(got); f != flags(full)|flagTC {
		return fmt.Sprintf("flags %#04x, want the answer's %#04x with TC", f, flags(full))
	}
	c := counts(got)
	wantQD := 0
	if q.question != nil {
		wantQD = 1
	}
	if c.qd != wantQD || c.an != 0 || c.ns != 0 {
		return fmt.Sprintf("sections %d/%d/%d/%d, want %d/0/0/OPT", c.qd, c.an, c.ns, c.ar, wantQD)
	}
	if !bytes.HasPrefix(got[12:], q.question) {
		return "question not echoed byte for byte"
	}
	s, _, hasOPT := findOPT(got)
	switch {
	case q.edns && (!hasOPT || c.ar != 1):
		return "no OPT record (RFC 6891 §7: the minimal response has one)"
	case !q.edns && c.ar != 0:
		return "records in the additional section of an answer to a query without EDNS"
	}
	if hasOPT {
		if fs, _, ok := findOPT(full); ok && !bytes.Equal(got[s+5:s+9], full[fs+5:fs+9]) {
			return "OPT extended RCODE/version/DO differ from the answer's"
		}
	}
	return ""
}

// ownReply checks one of dotproxy's own replies to a query it did not
// forward: the query's opcode, RD and CD, the given rcode, QR set, the
// question echoed, no records, and an OPT record exactly when the query had
// one.
func ownReply(q *query, got []byte, rcode int) string {
	qf, f := flags(q.wire), flags(got)
	const keep = 0x7800 | 0x0100 | 0x0010 // opcode, RD, CD
	if f&flagQR == 0 || f&keep != qf&keep || int(f&0xF) != rcode {
		return fmt.Sprintf("flags %#04x, want QR, rcode %d and the query's opcode/RD/CD (%#04x)", f, rcode, qf&keep)
	}
	c := counts(got)
	if c.qd != 1 || c.an != 0 || c.ns != 0 || !bytes.HasPrefix(got[12:], q.question) {
		return "question not echoed, or records present"
	}
	if _, _, hasOPT := findOPT(got); hasOPT != q.edns || c.ar != btoi(q.edns) {
		return "OPT record present without EDNS in the query, or missing with it"
	}
	return ""
}

// ownFormErr: QR, FORMERR, the query's opcode, no answer records; the
// question may be absent (it did not parse) and an OPT record may be
// present.
func ownFormErr(q *query, got []byte) bool {
	f := flags(got)
	c := counts(got)
	return f&flagQR != 0 && int(f&0xF) == rcodeFormErr && f&0x7800 == flags(q.wire)&0x7800 &&
		c.qd <= 1 && c.an == 0 && c.ns == 0 && c.ar <= 1
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func firstDifference(got, want []byte) string {
	n := min(len(got), len(want))
	for i := 2; i < n; i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("%d vs %d bytes, first difference at offset %d (%#02x vs %#02x)", len(got), len(want), i, got[i], want[i])
		}
	}
	return fmt.Sprintf("%d vs %d bytes, one is a prefix of the other", len(got), len(want))
}
