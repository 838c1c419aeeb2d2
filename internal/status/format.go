// Package status is what a running dotproxy says about itself and how
// `dotproxy status` reads it back: the encoding of the status as lines of
// text, which travel as the TXT records of the answer to
// status.dotproxy. CH TXT (see proxy/local.go); reading that answer from
// the bytes a socket gave; and the table a person reads. It reads
// untrusted bytes, and is fuzzed.
package status

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The status a running dotproxy gives about itself travels as the text of
// TXT records, one line per record, in the answer to status.dotproxy. CH
// TXT (proxy/local.go): readable as it is with dig, and strict enough for
// `dotproxy status` to decode. Version 1:
//
//	dotproxy-status/1 version=v1.2.0 started=1718000000000 now=1718000042000 ready=no reason=every upstream of the default route is down
//	upstream route=default name=1.1.1.1:853 state=down since=1718000040000 conns=0 inflight=0 latency_us=0 answers=12 failures=3 error_at=1718000041000 error=upstream 1.1.1.1:853: connect: connection refused
//
// Each line is space-separated key=value fields after its first word;
// times are Unix milliseconds on the proxy's clock; a value holds no
// space, except that of the last key, reason or error, which runs to the
// end of the line. A decoder skips keys it does not know, so that a field
// can be added without a new version; the version changes when a field's
// meaning does.
const (
	magic = "dotproxy-status/"
	// Version is the version of the encoding that Lines writes and Decode
	// reads.
	Version = 1
	// LineMax bounds a line, the last error's text included: long
	// enough for any error dotproxy makes, short enough that the status
	// of every upstream fits one message.
	LineMax = 512
)

// Report is the status of a running dotproxy: what it is, whether it is
// ready, and each upstream of each route.
type Report struct {
	Version   string
	Started   time.Time
	Now       time.Time // the proxy's clock when it answered
	Ready     bool
	Reason    string // why it is not ready; empty when ready
	Upstreams []Upstream
	// Truncated is set when the answer had more upstreams than one
	// message holds (decoding only).
	Truncated bool
}

// Upstream is one upstream of one route, as its balancer and its pool see
// it.
type Upstream struct {
	Route     string
	Name      string
	State     string // up, probation or down
	Since     time.Time
	Conns     int
	InFlight  int
	Latency   time.Duration // moving average; zero until measured
	Answers   int64
	Failures  int64
	ErrorAt   time.Time // zero when none failed
	LastError string
}

// ErrBadStatus is wrapped by the errors of Decode and DecodeAnswer for
// what is not a status this package can read.
var ErrBadStatus = errors.New("not a dotproxy status answer")

// ErrRefused is a proxy that would not answer: the question did not come
// from loopback.
var ErrRefused = errors.New("the proxy REFUSED: it answers status only to a client on loopback, on the host (or in the container) it runs on")

// Lines encodes r, one line per TXT record; none is longer than LineMax.
func (r *Report) Lines() []string {
	out := make([]string, 0, 1+len(r.Upstreams))
	var b strings.Builder
	fmt.Fprintf(&b, "%s%d version=%s started=%d now=%d ready=%s", magic, Version,
		word(r.Version), millis(r.Started), millis(r.Now), yesNo(r.Ready))
	if !r.Ready {
		b.WriteString(" reason=")
		b.WriteString(text(r.Reason))
	}
	out = append(out, clip(b.String()))
	for _, u := range r.Upstreams {
		b.Reset()
		fmt.Fprintf(&b, "upstream route=%s name=%s state=%s since=%d conns=%d inflight=%d latency_us=%d answers=%d failures=%d",
			word(u.Route), word(u.Name), word(u.State), millis(u.Since), max(u.Conns, 0), max(u.InFlight, 0),
			max(u.Latency.Microseconds(), 0), max(u.Answers, 0), max(u.Failures, 0))
		if !u.ErrorAt.IsZero() {
			fmt.Fprintf(&b, " error_at=%d error=%s", millis(u.ErrorAt), text(u.LastError))
		}
		out = append(out, clip(b.String()))
	}
	return out
}

// millis writes t as Unix milliseconds; 0 for a zero time or any before
// 1970, which Decode reads back as a zero time.
func millis(t time.Time) int64 {
	return max(t.UnixMilli(), 0)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// word makes s a value that holds no space: one that did would end early.
// Empty becomes "-".
func word(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	return s
}

// text makes s a value that runs to the end of the line: control
// characters (a newline, a terminal's escape) become spaces, in encoding
// and in decoding alike, since the text ends up on someone's terminal.
func text(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return ' '
		}
		return r
	}, s)
}

// clip cuts a line to LineMax bytes, at a rune's start.
func clip(s string) string {
	if len(s) <= LineMax {
		return s
	}
	i := LineMax
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}

// Decode reads the lines of a status answer. It is strict about what it
// needs and skips what it does not know; the texts it returns hold no
// control character.
func Decode(lines []string) (*Report, error) {
	if len(lines) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrBadStatus)
	}
	head, rest, _ := strings.Cut(lines[0], " ")
	v, ok := strings.CutPrefix(head, magic)
	if !ok {
		return nil, fmt.Errorf("%w: it starts %q", ErrBadStatus, clipShow(head))
	}
	if n, err := strconv.Atoi(v); err != nil || n != Version {
		return nil, fmt.Errorf("%w: format %q, this dotproxy reads %d (is it another version?)", ErrBadStatus, clipShow(v), Version)
	}
	f, err := fields(rest, "reason")
	if err != nil {
		return nil, err
	}
	r := &Report{Version: f.str("version")}
	r.Started = f.millis("started")
	r.Now = f.millis("now")
	switch f.str("ready") {
	case "yes":
		r.Ready = true
	case "no":
		r.Reason = f.str("reason")
	default:
		f.fail("ready", "yes or no")
	}
	if f.err != nil {
		return nil, f.err
	}
	for _, line := range lines[1:] {
		kind, rest, _ := strings.Cut(line, " ")
		if kind != "upstream" {
			continue // a kind of line a later dotproxy added
		}
		f, err := fields(rest, "error")
		if err != nil {
			return nil, err
		}
		u := Upstream{
			Route: f.str("route"), Name: f.str("name"), State: f.str("state"),
			Since: f.millis("since"), Conns: int(f.count("conns")), InFlight: int(f.count("inflight")),
			Latency: time.Duration(f.count("latency_us")) * time.Microsecond,
			Answers: f.count("answers"), Failures: f.count("failures"),
		}
		if _, ok := f.m["error_at"]; ok {
			u.ErrorAt = f.millis("error_at")
			u.LastError = f.str("error")
		}
		if f.err != nil {
			return nil, f.err
		}
		r.Upstreams = append(r.Upstreams, u)
	}
	return r, nil
}

// fieldSet is one line's key=value fields, read by the methods below; the
// first field that is missing or bad leaves its error in err.
type fieldSet struct {
	m   map[string]string
	err error
}

// fields splits s into key=value fields; the value of last runs to the end
// of the line.
func fields(s, last string) (*fieldSet, error) {
	f := &fieldSet{m: map[string]string{}}
	for s != "" {
		var field string
		field, s, _ = strings.Cut(s, " ")
		key, value, ok := strings.Cut(field, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("%w: field %q is not key=value", ErrBadStatus, clipShow(field))
		}
		if key == last {
			value, s = value+spaceIf(s)+s, ""
		}
		if _, dup := f.m[key]; dup {
			return nil, fmt.Errorf("%w: field %q twice", ErrBadStatus, clipShow(key))
		}
		f.m[key] = value
	}
	return f, nil
}

func spaceIf(s string) string {
	if s == "" {
		return ""
	}
	return " "
}

func (f *fieldSet) fail(key, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: %s=%q is not %s", ErrBadStatus, key, clipShow(f.m[key]), want)
	}
}

// str returns the text of key, made safe to print; missing is an error.
func (f *fieldSet) str(key string) string {
	v, ok := f.m[key]
	if !ok {
		if f.err == nil {
			f.err = fmt.Errorf("%w: no %s", ErrBadStatus, key)
		}
		return ""
	}
	return text(v)
}

// count returns the count in key, which must be a number from 0.
func (f *fieldSet) count(key string) int64 {
	v := f.str(key)
	if f.err != nil {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		f.fail(key, "a count")
		return 0
	}
	return n
}

// millis returns the time in key, Unix milliseconds.
func (f *fieldSet) millis(key string) time.Time {
	v := f.str(key)
	if f.err != nil {
		return time.Time{}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > maxMillis {
		f.fail(key, "a time")
		return time.Time{}
	}
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// maxMillis is the year 9999: a later time is a broken field.
const maxMillis = 253402300799999

// clipShow shortens what an error quotes from the socket.
func clipShow(s string) string {
	s = text(s)
	if len(s) <= 40 {
		return s
	}
	i := 40
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
