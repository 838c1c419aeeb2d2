package balance

import (
	"errors"
	"testing"
	"time"
)

// transferFake is a fakeUpstream that can pass transfers on: it hands on
// msgs, then returns err.
type transferFake struct {
	*fakeUpstream
	msgs  int
	err   error
	calls int
}

func (f *transferFake) Transfer(q []byte, _ time.Time, _ time.Duration, each func([]byte) error) (bool, error) {
	f.calls++
	for i := range f.msgs {
		if err := each(reply(q, 0)); err != nil {
			return i > 0, err
		}
	}
	return f.msgs > 0, f.err
}

func transferBalancer(t *testing.T, fakes ...*transferFake) *Balancer {
	t.Helper()
	b, err := newBalancer(members(fakes), Config{Policy: Failover, MaxRetries: 2}, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A transfer that fails before handing anything on goes to the next
// upstream; one that fails after does not, since the client holds part.
func TestTransferRetriesOnlyBeforeTheFirstMessage(t *testing.T) {
	dead := &transferFake{fakeUpstream: newFake("u0", answer), err: errors.New("dial failed")}
	good := &transferFake{fakeUpstream: newFake("u1", answer), msgs: 3}
	b := transferBalancer(t, dead, good)
	n := 0
	from, err := b.Transfer(testQuery, far(), time.Second, func([]byte) error { n++; return nil })
	if err != nil || nameOf(from) != "u1" || n != 3 {
		t.Fatalf("Transfer: from %s, %d messages, %v; want u1's 3", nameOf(from), n, err)
	}

	broken := &transferFake{fakeUpstream: newFake("u0", answer), msgs: 2, err: errors.New("cut")}
	spare := &transferFake{fakeUpstream: newFake("u1", answer), msgs: 3}
	b = transferBalancer(t, broken, spare)
	if _, err := b.Transfer(testQuery, far(), time.Second, func([]byte) error { return nil }); err == nil {
		t.Fatal("a transfer broken midway ended without an error")
	}
	if spare.calls != 0 {
		t.Fatal("a transfer broken midway was tried again elsewhere")
	}
}
