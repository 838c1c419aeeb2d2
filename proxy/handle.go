package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// A query's path through the Server, the same for both transports: check
// parses it and answers at once what goes no further (dropped, malformed,
// refused, a zone transfer over UDP); the rest is started on the Resolver,
// whose Finisher, the query's own (udpQuery, tcpQuery), has finish make the
// reply and writes it. No goroutine waits for a query in between.

// check parses a query into q and returns done with the reply to send (nil
// for none) when it goes no further: dropped, malformed, refused or over
// its client's rate limit.
func (s *Server) check(t Transport, client netip.Addr, msg []byte, arrived time.Time, q *dnsmsg.Query) (reply []byte, done bool) {
	var err error
	*q, err = dnsmsg.ParseQuery(msg)
	switch {
	case errors.Is(err, dnsmsg.ErrShort):
		s.obs.Dropped(t, DropShort)
		return nil, true
	case errors.Is(err, dnsmsg.ErrNotQuery):
		s.obs.Dropped(t, DropResponse)
		return nil, true
	case err != nil:
		s.obs.Malformed(t)
		q.Question = nil // it did not parse: echo none of it
		q.UDPSize, q.OPTTTL, q.EDNS = dnsmsg.MalformedEDNS(msg)
		return s.reply(t, client, q, nil, dnsmsg.ReplyEDE(q, dnsmsg.RcodeFormErr, dnsmsg.EDEMalformed), arrived, len(msg)), true
	}
	if isLocalQuestion(q) {
		return s.answerLocal(t, client, q, arrived, len(msg)), true // see local.go
	}
	if !s.allowed(client) {
		s.obs.Refused(t)
		return s.reply(t, client, q, nil, dnsmsg.ReplyEDE(q, dnsmsg.RcodeRefused, dnsmsg.EDEProhibited), arrived, len(msg)), true
	}
	if reply, limited := s.overLimit(t, client, q, arrived, len(msg)); limited {
		return reply, true
	}
	if s.cfg.HideClientSubnet {
		if rcode, ok := dnsmsg.CheckClientSubnet(msg, q); !ok {
			// Answered here, not failed upstream, where the error
			// would count against the upstream's health.
			why := dnsmsg.EDESubnetNotHidden
			if rcode == dnsmsg.RcodeFormErr {
				s.obs.Malformed(t)
				why = dnsmsg.EDEBadClientSubnet
			} else {
				s.obs.Refused(t)
			}
			return s.reply(t, client, q, nil, dnsmsg.ReplyEDE(q, rcode, why), arrived, len(msg)), true
		}
	}
	if t == UDP && dnsmsg.IsTransfer(q) {
		// AXFR is defined over TCP only (RFC 5936 §4.2), and an IXFR
		// answer that may not fit a datagram sends the client to TCP
		// (RFC 1995 §2): TC set says so to every client, which asks
		// again over TCP, where the whole transfer is passed on.
		s.obs.Truncated()
		tc := dnsmsg.Truncated(q, dnsmsg.Reply(q, dnsmsg.RcodeSuccess))
		return s.reply(t, client, q, nil, tc, arrived, len(msg)), true
	}
	return nil, false
}

// finish returns the reply to a query that went to the resolver, given
// what the resolver returned.
func (s *Server) finish(t Transport, client netip.Addr, q *dnsmsg.Query, querySize int, arrived, deadline time.Time,
	answer []byte, from fmt.Stringer, err error) []byte {
	if err != nil {
		reason, why := failure(err, deadline)
		s.obs.Failed(t, reason)
		if s.debug {
			s.log.Debug("query failed", "client", client, "transport", string(t),
				"question", dnsmsg.QuestionString(q.Question), "reason", string(reason), "err", err.Error())
		}
		// from, if the resolver names itself with the error (a route),
		// is who this SERVFAIL is counted against.
		return s.reply(t, client, q, from, dnsmsg.ReplyEDE(q, dnsmsg.RcodeServFail, why), arrived, querySize)
	}
	if t == UDP && len(answer) > q.MaxUDPAnswer() {
		s.obs.Truncated()
		answer = dnsmsg.Truncated(q, answer)
	}
	return s.reply(t, client, q, from, answer, arrived, querySize)
}

// reply reports a reply about to leave and returns it. At debug level it
// also logs the query, which is what an operator asks first: who asked what,
// and what came back from where.
func (s *Server) reply(t Transport, client netip.Addr, q *dnsmsg.Query, from fmt.Stringer, msg []byte, arrived time.Time, querySize int) []byte {
	rcode := dnsmsg.Rcode(msg)
	rtt := time.Since(arrived)
	s.obs.Answered(t, from, rcode, rtt, querySize, len(msg))
	if s.debug {
		s.log.Debug("query", "client", client, "transport", string(t),
			"question", dnsmsg.QuestionString(q.Question), "rcode", dnsmsg.RcodeName(rcode),
			"upstream", upstreamName(from), "rtt", rtt, "size", len(msg))
	}
	return msg
}

func (s *Server) allowed(client netip.Addr) bool {
	if len(s.cfg.Allow) == 0 {
		return true
	}
	// A link-local client arrives with its interface as a zone, and a
	// prefix contains no address that has one.
	client = client.Unmap().WithZone("")
	for _, p := range s.cfg.Allow {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// upstreamName names the upstream that answered in the debug log, "" for
// the proxy's own replies.
func upstreamName(u fmt.Stringer) string {
	if u == nil {
		return ""
	}
	return u.String()
}
