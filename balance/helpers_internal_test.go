package balance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// behaviour is how a fake upstream handles one exchange.
type behaviour func(ctx context.Context, query []byte) ([]byte, error)

// errRefused stands for any transport failure of a fake upstream.
var errRefused = errors.New("fake: connection refused")

// answer replies at once with a NOERROR answer.
func answer(_ context.Context, q []byte) ([]byte, error) { return reply(q, 0), nil }

// servfail replies at once with SERVFAIL.
func servfail(_ context.Context, q []byte) ([]byte, error) { return reply(q, 2), nil }

// refuse fails at once.
func refuse(context.Context, []byte) ([]byte, error) { return nil, errRefused }

// errSilent stands for a connection that fell silent: a failure of the
// upstream, not a timeout.
var errSilent = errors.New("fake: connection fell silent")

// silentFor fails with errSilent after d, as a pool does when its
// connection stops answering for an attempt timeout.
func silentFor(d time.Duration) behaviour {
	return func(ctx context.Context, _ []byte) ([]byte, error) {
		select {
		case <-time.After(d):
			return nil, errSilent
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// far is a deadline that no test reaches.
func far() time.Time { return time.Now().Add(time.Hour) }

// stall never answers: it returns only when ctx is done.
func stall(ctx context.Context, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// answerAfter replies after d, or fails when ctx ends first. Inside a
// synctest bubble d passes on the fake clock.
func answerAfter(d time.Duration) behaviour {
	return func(ctx context.Context, q []byte) ([]byte, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return reply(q, 0), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// reply turns a copy of q into a response with the given rcode.
func reply(q []byte, rcode byte) []byte {
	a := bytes.Clone(q)
	a[2] |= 0x80
	a[3] = a[3]&0xF0 | rcode
	return a
}

// fakeUpstream is an Upstream whose behaviour a test sets and changes. It
// counts client queries and probes apart, telling them by the probe's bytes.
type fakeUpstream struct {
	name   string
	probe  atomic.Pointer[[]byte]
	act    atomic.Pointer[behaviour]
	calls  atomic.Int64 // client queries received
	probes atomic.Int64 // probes received
	// finished counts client queries that have returned.
	finished atomic.Int64
	// inflight counts exchanges under way, probes included, as a pool does.
	inflight atomic.Int64
	// started counts the queries started, probes included.
	started atomic.Int64
	// probed, when set, receives each probe's outcome: whether it answered.
	probed chan bool
}

var _ Upstream = (*fakeUpstream)(nil)

func newFake(name string, act behaviour) *fakeUpstream {
	f := &fakeUpstream{name: name}
	f.set(act)
	return f
}

func (f *fakeUpstream) set(act behaviour) { f.act.Store(&act) }

func (f *fakeUpstream) String() string { return f.name }

func (f *fakeUpstream) InFlight() int { return int(f.inflight.Load()) }

// Start runs the fake's behaviour in a goroutine of its own, as a pool's
// reader would tell done from its own.
func (f *fakeUpstream) Start(q []byte, deadline time.Time, done Done) {
	f.started.Add(1)
	go func() { done.ExchangeDone(f.Exchange(q, deadline)) }()
}

// StartHeld is Start: the fake writes nothing to hold.
func (f *fakeUpstream) StartHeld(q []byte, deadline time.Time, done Done) { f.Start(q, deadline, done) }

// Flush implements Upstream.
func (f *fakeUpstream) Flush() {}

// Exchange runs the fake's behaviour with a context that ends at deadline.
func (f *fakeUpstream) Exchange(q []byte, deadline time.Time) ([]byte, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	f.inflight.Add(1)
	defer f.inflight.Add(-1)
	isProbe := false
	if p := f.probe.Load(); p != nil && bytes.Equal(q, *p) {
		isProbe = true
		f.probes.Add(1)
	} else {
		f.calls.Add(1)
	}
	ans, err := (*f.act.Load())(ctx, q)
	if isProbe && f.probed != nil {
		f.probed <- err == nil
	}
	if !isProbe {
		f.finished.Add(1)
	}
	return ans, err
}

// isProbe reports whether q is the probe of the Balancer f belongs to.
func isProbe(f *fakeUpstream, q []byte) bool {
	p := f.probe.Load()
	return p != nil && bytes.Equal(q, *p)
}

// testPool returns n fakes named u0, u1, … that answer at once.
func testPool(n int) []*fakeUpstream {
	fs := make([]*fakeUpstream, n)
	for i := range fs {
		fs[i] = newFake(fmt.Sprintf("u%d", i), answer)
	}
	return fs
}

// seeded returns a source of random numbers with a fixed seed, safe for
// concurrent use.
func seeded(seed uint64) func() uint64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Uint64()
	}
}

// members makes the fakes, or any upstreams, members of a Balancer, each
// bound to obs under its name when obs is given.
func members[U interface {
	Upstream
	fmt.Stringer
}](ups []U, obs ...*recorder) []Member {
	ms := make([]Member, len(ups))
	for i, u := range ups {
		ms[i].Upstream = u
		if len(obs) > 0 {
			ms[i].Observer = obs[0].bind(u.String())
		}
	}
	return ms
}

// newTestBalancer builds a Balancer over fakes with a seeded source, each
// fake bound to obs when given, tells the fakes its probe, and closes it
// when the test ends.
func newTestBalancer(tb testing.TB, fakes []*fakeUpstream, cfg Config, obs ...*recorder) *Balancer {
	tb.Helper()
	b, err := newBalancer(members(fakes, obs...), cfg, seeded(1))
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range fakes {
		f.probe.Store(&b.probeMsg)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// testQuery is a minimal query: header only, ID 0x4242, RD set.
var testQuery = []byte{0x42, 0x42, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// event is one HealthChanged call.
type event struct {
	upstream string
	up       bool
}

// recorder is an Observer that keeps counts and delivers health changes on
// a channel.
type recorder struct {
	retried atomic.Int64
	hedged  atomic.Int64
	health  chan event
}

func newRecorder() *recorder { return &recorder{health: make(chan event, 1024)} }

// bind returns the Observer of one upstream, which reports to r.
func (r *recorder) bind(name string) Observer { return &bound{r, name} }

// bound is a recorder bound to one upstream.
type bound struct {
	r    *recorder
	name string
}

var _ Observer = (*bound)(nil)

func (o *bound) String() string        { return o.name }
func (o *bound) Retried()              { o.r.retried.Add(1) }
func (o *bound) Hedged()               { o.r.hedged.Add(1) }
func (o *bound) HealthChanged(up bool) { o.r.health <- event{o.name, up} }

// next returns the next health change, failing the test if none is pending.
func (r *recorder) next(tb testing.TB) event {
	tb.Helper()
	select {
	case e := <-r.health:
		return e
	default:
		tb.Fatal("no health change pending")
		return event{}
	}
}

// resolve sends testQuery and fails the test on error; it returns the name
// of the upstream that answered.
func resolve(tb testing.TB, b *Balancer) string {
	tb.Helper()
	_, up, err := b.Resolve(testQuery, far())
	if err != nil {
		tb.Fatalf("Resolve: %v", err)
	}
	return nameOf(up)
}

// nameOf names the upstream Resolve returned, "" for none.
func nameOf(up fmt.Stringer) string {
	if up == nil {
		return ""
	}
	return up.String()
}

// counts returns how many client queries each fake received.
func counts(fakes []*fakeUpstream) []int64 {
	c := make([]int64, len(fakes))
	for i, f := range fakes {
		c[i] = f.calls.Load()
	}
	return c
}
