package proxy

import (
	"net/netip"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// The proxy answers a few questions about itself, in the CHAOS class as
// servers have long done (version.bind), on its own listen addresses: no
// port of its own, no file, nothing that a client elsewhere can reach.
// The zone LocalZone, in class CHAOS, is the proxy's own: no question in
// it is ever forwarded. Only a client on loopback is answered; every other
// gets REFUSED, whatever DOTPROXY_ALLOW says, and a loopback client is
// answered whatever it says: the access list is about forwarding. A
// packet from outside the host with a loopback source is dropped by the
// kernel as a martian, and TCP, where the answer comes, needs a handshake
// that a spoofed source cannot complete.
const (
	// LocalZone is the zone, in class CHAOS, that the proxy answers itself.
	LocalZone = "dotproxy."
	// StatusName is the name whose TXT records, in class CHAOS, tell how
	// the proxy is, as its StatusSource writes them. The answer is given
	// over TCP only: over UDP the reply has TC set and no records, which
	// sends any DNS client to TCP, since the answer can be large.
	StatusName = "status." + LocalZone
)

// StatusSource writes the proxy's answer about itself.
type StatusSource interface {
	// StatusLines returns the lines of the answer to StatusName, one TXT
	// record each, in order. It is called for each such query, on the
	// client connection's goroutine, and must be safe for concurrent use.
	StatusLines() []string
}

// The wire forms of the names above, compared with each question in the
// CHAOS class.
var (
	localZone  = mustWireName(LocalZone)
	statusName = mustWireName(StatusName)
)

func mustWireName(name string) []byte {
	b, err := dnsmsg.WireName(name)
	if err != nil {
		panic(err)
	}
	return b
}

// isLocalQuestion reports whether q asks about the proxy itself; it costs
// any other query a compare of its class.
func isLocalQuestion(q *dnsmsg.Query) bool {
	if dnsmsg.QuestionClass(q.Question) != dnsmsg.ClassCHAOS {
		return false
	}
	in, _ := dnsmsg.InZone(q.Question, localZone)
	return in
}

// answerLocal returns the reply to q, a question in LocalZone.
func (s *Server) answerLocal(t Transport, client netip.Addr, q *dnsmsg.Query, arrived time.Time, size int) []byte {
	if !client.Unmap().IsLoopback() || s.cfg.Status == nil {
		s.obs.Refused(t)
		return s.reply(t, client, q, nil, dnsmsg.ReplyEDE(q, dnsmsg.RcodeRefused, dnsmsg.EDEProhibited), arrived, size)
	}
	_, isStatus := dnsmsg.InZone(q.Question, statusName)
	_, isApex := dnsmsg.InZone(q.Question, localZone)
	qtype := dnsmsg.QuestionType(q.Question)
	var reply []byte
	switch {
	case q.Opcode() != 0:
		reply = dnsmsg.Reply(q, dnsmsg.RcodeNotImp)
	case !isStatus && !isApex:
		reply = dnsmsg.LocalReply(q, dnsmsg.RcodeNXDomain, nil, dnsmsg.MaxMessage)
	case isApex || qtype != dnsmsg.TypeTXT && qtype != dnsmsg.TypeANY:
		reply = dnsmsg.LocalReply(q, dnsmsg.RcodeSuccess, nil, dnsmsg.MaxMessage) // no such record
	case t == UDP:
		s.obs.Truncated()
		reply = dnsmsg.Truncated(q, dnsmsg.LocalReply(q, dnsmsg.RcodeSuccess, nil, dnsmsg.MaxMessage))
	default:
		reply = dnsmsg.LocalReply(q, dnsmsg.RcodeSuccess, s.cfg.Status.StatusLines(), dnsmsg.MaxMessage)
	}
	return s.reply(t, client, q, nil, reply, arrived, size)
}
