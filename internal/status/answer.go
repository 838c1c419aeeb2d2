package status

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/proxy"
)

// Query returns the question `dotproxy status` asks: status.dotproxy. TXT
// in class CHAOS, with the given ID and no recursion asked.
func Query(id uint16) []byte {
	q, err := dnsmsg.NewQuery(id, proxy.StatusName, dnsmsg.TypeTXT)
	if err != nil {
		panic(err) // a constant name
	}
	q[2] = 0                              // RD off: the proxy knows the answer
	q[len(q)-1] = byte(dnsmsg.ClassCHAOS) // NewQuery writes class IN
	return q
}

// DecodeAnswer reads msg, the answer to Query(id) as the socket gave it.
// A proxy that refused to answer gives ErrRefused.
func DecodeAnswer(msg []byte, id uint16) (*Report, error) {
	if len(msg) < dnsmsg.HeaderLen || dnsmsg.ID(msg) != id || !dnsmsg.IsResponse(msg) {
		return nil, fmt.Errorf("%w: not an answer to the question asked", ErrBadStatus)
	}
	switch rc := dnsmsg.Rcode(msg); rc {
	case dnsmsg.RcodeSuccess:
	case dnsmsg.RcodeRefused:
		return nil, ErrRefused
	default:
		return nil, fmt.Errorf("%w: %s (is it a dotproxy older than the status command?)", ErrBadStatus, dnsmsg.RcodeName(rc))
	}
	records, err := dnsmsg.TXTAnswers(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadStatus, err)
	}
	lines := make([]string, len(records))
	for i, rec := range records {
		lines[i] = string(rec)
	}
	r, err := Decode(lines)
	if err != nil {
		return nil, err
	}
	r.Truncated = msg[2]&0x02 != 0 // TC
	return r, nil
}

// Render writes r for a person: a line about the proxy, then a table of
// the upstreams. Times are shown as how long ago, on the proxy's own clock.
func Render(w io.Writer, r *Report) {
	state := "ready"
	if !r.Ready {
		state = "NOT READY: " + r.Reason
	}
	fmt.Fprintf(w, "dotproxy %s, up %s, %s\n\n", r.Version, ago(r.Now, r.Started), state)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tUPSTREAM\tSTATE\tSINCE\tCONNS\tINFLIGHT\tLATENCY\tANSWERS\tFAILURES\tLAST ERROR")
	for _, u := range r.Upstreams {
		lastErr := "-"
		if !u.ErrorAt.IsZero() {
			lastErr = ago(r.Now, u.ErrorAt) + " ago: " + u.LastError
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s\n", u.Route, u.Name, u.State, ago(r.Now, u.Since),
			u.Conns, u.InFlight, latency(u.Latency), u.Answers, u.Failures, lastErr)
	}
	tw.Flush()
	if r.Truncated {
		fmt.Fprintf(w, "\n(%d upstreams shown: the rest did not fit in one answer)\n", len(r.Upstreams))
	}
}

// ago is how long before now t was, to the second; 0s for a time after now.
func ago(now, t time.Time) string {
	return max(now.Sub(t), 0).Truncate(time.Second).String()
}

// latency is a moving average for a person to read, to 0.1 ms; "-"
// before the first answer.
func latency(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}
