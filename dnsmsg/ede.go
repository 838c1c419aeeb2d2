package dnsmsg

// OptionEDE is the Extended DNS Error option (RFC 8914): a 2-byte INFO-CODE
// and an EXTRA-TEXT in UTF-8.
const OptionEDE = 15

// EDE names why the proxy answered a query itself, as the Extended DNS
// Error (RFC 8914) its reply carries when the client sent EDNS. Each value
// stands for one INFO-CODE and one fixed, short EXTRA-TEXT: nothing the
// client sent is ever echoed in it. The zero value, EDENone, adds no option.
//
// RFC 8914 §4 defines no code for a query that does not parse, for a server
// too busy to take a query, or for rate limiting. Those take 0, Other Error,
// which §4.1 gives to what no other code covers, with the EXTRA-TEXT it asks
// for saying what happened.
type EDE uint8

// The reasons of the proxy's own replies.
const (
	// EDENone adds no option.
	EDENone EDE = iota
	// EDEProhibited goes with REFUSED to a client outside DOTPROXY_ALLOW:
	// 18, Prohibited, the code §4.19 gives to a query from an
	// "unauthorized" client, refused by local policy.
	EDEProhibited
	// EDENoAnswerInTime goes with the SERVFAIL sent when
	// DOTPROXY_QUERY_TIMEOUT passed with no answer: 22, No Reachable
	// Authority, "could not reach any of the authoritative name servers (or
	// they potentially refused to reply)" (§4.23). To a forwarder its
	// upstream resolvers are the servers it asks; none replied in time,
	// which is that code's second half, whether they were slow or lost.
	EDENoAnswerInTime
	// EDEUpstreamFailed goes with the SERVFAIL sent when every attempt
	// failed before the deadline (refused, reset, TLS or certificate
	// failures, a connection gone silent): 23, Network Error, "an
	// unrecoverable error occurred while communicating with another server"
	// (§4.24). Each attempt did reach, or try to reach, an upstream and
	// broke off: an error of the exchange, not an absence of reply.
	EDEUpstreamFailed
	// EDEAllDown goes with the SERVFAIL sent at once, without trying, when
	// every upstream is down and failed its probes: 22, No Reachable
	// Authority. No upstream can be reached, the code's first half; nothing
	// was sent, so there was no exchange for Network Error to describe.
	EDEAllDown
	// EDEMalformed goes with FORMERR, when the query's OPT record can
	// still be found (see MalformedEDNS): 0, Other Error. No code of §4
	// is about the query itself.
	EDEMalformed
	// EDEOverloaded goes with the REFUSED sent over TCP when the memory for
	// queries in flight is full: 0, Other Error. 14, Not Ready (§4.15),
	// says the server "was not fully functional", which reads as starting
	// up or broken, not as busy for a moment.
	EDEOverloaded
	// EDETransferNotSupported goes with NOTIMP for a zone transfer when the
	// resolver behind the proxy cannot pass one on: 21, Not Supported,
	// "the requested operation or query is not supported" (§4.22).
	EDETransferNotSupported
	// EDERateLimited is for replies to a client over its rate: REFUSED
	// over TCP, an empty reply with TC set over UDP (see TruncatedReply).
	// 0, Other Error, with "rate limited". 18, Prohibited, would read as
	// the access list's refusal, lasting, where this one ends with the
	// client's rate; 14, Not Ready, as above. An individual draft,
	// draft-muks-dns-ede-rate-limited, proposes a code of its own; until
	// it is registered, Other with text is what every client understands.
	EDERateLimited
	// EDEBadClientSubnet goes with FORMERR for a malformed EDNS Client
	// Subnet option that the proxy was to hide (RFC 7871 §6 has a
	// resolver answer such a query FORMERR): 0, Other Error, as for any
	// malformed query, with a text that names the option.
	EDEBadClientSubnet
	// EDESubnetNotHidden goes with REFUSED for a query whose client subnet
	// the proxy was to hide and cannot (signed, or not safely rewritable):
	// 0, Other Error. It is the proxy's privacy rule, not the client's
	// standing, so not 18, Prohibited.
	EDESubnetNotHidden
)

// edeValues holds each EDE's INFO-CODE and EXTRA-TEXT, by EDE. It is never
// written.
var edeValues = [...]struct {
	code uint16
	text string
}{
	EDENone:                 {},
	EDEProhibited:           {18, "client not allowed"},
	EDENoAnswerInTime:       {22, "no upstream answered in time"},
	EDEUpstreamFailed:       {23, "every upstream attempt failed"},
	EDEAllDown:              {22, "every upstream is down"},
	EDEMalformed:            {0, "malformed query"},
	EDEOverloaded:           {0, "server overloaded"},
	EDETransferNotSupported: {21, "zone transfer not supported"},
	EDERateLimited:          {0, "rate limited"},
	EDEBadClientSubnet:      {0, "malformed client subnet option"},
	EDESubnetNotHidden:      {0, "client subnet cannot be hidden"},
}

// InfoCode returns e's INFO-CODE; 0 for EDENone and unknown values.
func (e EDE) InfoCode() uint16 {
	if int(e) < len(edeValues) {
		return edeValues[e].code
	}
	return 0
}

// ExtraText returns e's EXTRA-TEXT; "" for EDENone and unknown values.
func (e EDE) ExtraText() string {
	if int(e) < len(edeValues) {
		return edeValues[e].text
	}
	return ""
}

// present reports whether e adds an option: EDENone and values out of range
// add none.
func (e EDE) present() bool { return e != EDENone && int(e) < len(edeValues) }

// edeLen is the size of e's option: its code and length, the INFO-CODE and
// the EXTRA-TEXT; 0 when it adds none.
func (e EDE) edeLen() int {
	if !e.present() {
		return 0
	}
	return 6 + len(e.ExtraText())
}

// appendEDE appends e's option to msg.
func appendEDE(msg []byte, e EDE) []byte {
	text := e.ExtraText()
	n := 2 + len(text)
	code := e.InfoCode()
	msg = append(msg, 0, OptionEDE, byte(n>>8), byte(n), byte(code>>8), byte(code))
	return append(msg, text...)
}
