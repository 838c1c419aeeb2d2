package upstream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// ErrTransfer reports a zone transfer that the resolver broke off or sent
// out of order: its messages do not answer the query, or do not frame a
// transfer. Whatever was handed on before it is not a whole transfer.
var ErrTransfer = errors.New("upstream: zone transfer broken")

// Transfer sends a zone transfer query (AXFR, IXFR) on a connection of its
// own, never shared with other queries, since every message of the answer
// carries the query's ID, and hands each message of the answer to each, in
// order, with the query's own ID, until the transfer ends (see
// dnsmsg.TransferEnd), each returns an error, the resolver closes the
// connection, or time runs out: deadline for the whole transfer, idle for
// each message. An answer that refuses the transfer is handed on like any
// other, and ends it. passed reports whether anything was handed on, after
// which the transfer cannot be tried elsewhere.
func (p *Pool) Transfer(query []byte, deadline time.Time, idle time.Duration, each func(msg []byte) error) (passed bool, err error) {
	q, err := dnsmsg.ParseQuery(query)
	if err != nil || !dnsmsg.IsTransfer(&q) {
		return false, fmt.Errorf("%w: not a zone transfer query", ErrTransfer)
	}
	c, err := p.openTransfer()
	if err != nil {
		return false, err
	}
	reason := CloseIdle // the transfer is done: its connection has no more use
	defer func() { p.endTransfer(c, reason, err) }()

	wire, sent, buf, err := p.wire(query)
	if err != nil {
		return false, err
	}
	if buf != nil {
		defer putWire(buf)
	}
	frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire)))
	frame = append(frame, wire...)
	start := c.now()
	if err = c.tc.SetWriteDeadline(deadline); err == nil {
		_, err = c.tc.Write(frame)
	}
	if err != nil {
		reason = closeReason(err)
		return false, err
	}
	end := dnsmsg.NewTransferEnd(binary.BigEndian.Uint16(q.Question[len(q.Question)-4:]))
	r := bufio.NewReaderSize(c.tc, readBufferSize)
	for n := 0; ; n++ {
		next := time.Now().Add(idle)
		if deadline.Before(next) {
			next = deadline
		}
		if err = c.tc.SetReadDeadline(next); err != nil {
			reason = CloseError
			return passed, err
		}
		msg, err := readFrame(r, p.room)
		if err != nil {
			reason = closeReason(err)
			return passed, err
		}
		matches := dnsmsg.AnswerMatches
		if n > 0 {
			matches = dnsmsg.TransferMessageMatches
		}
		if dnsmsg.ID(msg) != q.ID || !matches(wire, msg) {
			p.obs.Mismatched()
			reason = CloseError
			return passed, fmt.Errorf("%w: message %d does not answer the query", ErrTransfer, n)
		}
		last, err := end.Next(msg)
		if err != nil {
			reason = CloseError
			return passed, fmt.Errorf("%w: message %d: %v", ErrTransfer, n, err)
		}
		if p.rewrite {
			msg, _, _ = dnsmsg.CleanAnswer(msg, query, sent)
		}
		if n == 0 {
			p.obs.Exchanged(c.since(start), len(wire), len(msg))
		}
		if err := each(msg); err != nil {
			return true, err
		}
		passed = true
		if last {
			return true, nil
		}
	}
}

// openTransfer opens a connection for one transfer, which Close ends too.
func (p *Pool) openTransfer() (*conn, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	c, err := p.open()
	if err != nil {
		p.logDial(err)
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.raw.Close()
		return nil, ErrClosed
	}
	if p.transfers == nil {
		p.transfers = make(map[*conn]struct{})
	}
	p.transfers[c] = struct{}{}
	return c, nil
}

// endTransfer closes a transfer's connection and reports why.
func (p *Pool) endTransfer(c *conn, reason CloseReason, err error) {
	p.mu.Lock()
	delete(p.transfers, c)
	p.mu.Unlock()
	c.closeSocket(reason, err, "zone transfer ended")
}
