package proxy

import (
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// failure names why a query sent to the Resolver failed with err: the
// reason the metrics count, and the Extended DNS Error the SERVFAIL carries
// to a client that sent EDNS.
func failure(err error, deadline time.Time) (FailReason, dnsmsg.EDE) {
	switch {
	case !time.Now().Before(deadline):
		return FailDeadline, dnsmsg.EDENoAnswerInTime
	case isUnreachable(err):
		return FailUnreachable, dnsmsg.EDEAllDown
	}
	return FailUpstream, dnsmsg.EDEUpstreamFailed
}

// isUnreachable reports whether err itself, not a cause it wraps, says that
// no upstream could be tried at all, by a method Unreachable reporting true
// (see Resolver), as isTimeout in balance asks Timeout.
func isUnreachable(err error) bool {
	u, ok := err.(interface{ Unreachable() bool })
	return ok && u.Unreachable()
}
