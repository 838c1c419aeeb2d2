package proxy_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// transferResolver passes on the messages it is given for a transfer, then
// fails with err if set; other queries get SERVFAIL.
type transferResolver struct {
	msgs [][]byte
	err  error
}

func (r *transferResolver) Start(q []byte, deadline time.Time, fin proxy.Finisher) {
	later(r, q, deadline, fin)
}

func (r *transferResolver) StartHeld(q []byte, deadline time.Time, fin proxy.Finisher) {
	r.Start(q, deadline, fin)
}

func (r *transferResolver) Flush() {}

func (r *transferResolver) Resolve([]byte, time.Time) ([]byte, fmt.Stringer, error) {
	return nil, nil, errors.New("not a transfer")
}

func (r *transferResolver) Transfer(query []byte, _ time.Time, _ time.Duration, each func([]byte) error) (fmt.Stringer, error) {
	for _, m := range r.msgs {
		m = append([]byte(nil), m...)
		copy(m, query[:2])
		if err := each(m); err != nil {
			return named("up"), err
		}
	}
	return named("up"), r.err
}

var _ proxy.Transferer = (*transferResolver)(nil)

func axfr(t *testing.T, id uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetAxfr("zone.example.")
	m.Id = id
	return m
}

func packed(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A transfer broken off after its first messages closes the client's
// connection, so that the client cannot take part for a whole; one broken
// before any message gets SERVFAIL.
func TestTransferBrokenMidwayClosesTheConnection(t *testing.T) {
	q := axfr(t, 42)
	part := new(dns.Msg)
	part.SetReply(q)
	r := &transferResolver{msgs: [][]byte{packed(t, part), packed(t, part)}, err: errors.New("cut")}
	_, addr, obs := start(t, r, nil)
	dc := dialTCP(t, addr)
	if err := dc.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if m, err := dc.ReadMsg(); err != nil || m.Id != 42 {
			t.Fatalf("message %d: %v %v", i, m, err)
		}
	}
	if _, err := dc.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the broken transfer: %v, want the connection closed", err)
	}
	if s := obs.snapshot(); s.failed[proxy.FailUpstream] != 1 {
		t.Fatalf("failed: %v", s.failed)
	}

	r2 := &transferResolver{err: errors.New("no connection")}
	_, addr2, _ := start(t, r2, nil)
	if a := exchange(t, "tcp", addr2, axfr(t, 43)); a.Rcode != dns.RcodeServerFailure || a.Id != 43 {
		t.Fatalf("transfer failed before any message: %s, want SERVFAIL", dns.RcodeToString[a.Rcode])
	}

	// A Transferer that ends with no message and no error: still an
	// answer, never silence or a crash.
	_, addr3, _ := start(t, &transferResolver{}, nil)
	if a := exchange(t, "tcp", addr3, axfr(t, 45)); a.Rcode != dns.RcodeServerFailure || a.Id != 45 {
		t.Fatalf("transfer with no message: %s, want SERVFAIL", dns.RcodeToString[a.Rcode])
	}
}

// A resolver that cannot pass transfers on answers NOTIMP over TCP.
func TestTransferWithoutTransfererIsNotImplemented(t *testing.T) {
	_, addr, _ := start(t, &echoResolver{}, nil)
	if a := exchange(t, "tcp", addr, axfr(t, 44)); a.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("rcode %s, want NOTIMP", dns.RcodeToString[a.Rcode])
	}
}
