package balance

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestRetryOnAnotherUpstream(t *testing.T) {
	fakes := testPool(3)
	fakes[0].set(refuse)
	obs := newRecorder()
	b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 2}, obs)
	if got := resolve(t, b); got != "u1" {
		t.Errorf("answered by %s, want u1", got)
	}
	if got := obs.retried.Load(); got != 1 {
		t.Errorf("Retried called %d times, want 1", got)
	}
	if e := obs.next(t); e != (event{"u0", false}) {
		t.Errorf("health change = %+v, want u0 down", e)
	}
	// u0 is down now: the next query goes straight to u1.
	resolve(t, b)
	if got := counts(fakes); got[0] != 1 || got[1] != 2 {
		t.Errorf("counts = %v, want [1 2 0]", got)
	}
}

func TestRetriesTryEachUpstreamOnce(t *testing.T) {
	fakes := testPool(3)
	for _, f := range fakes {
		f.set(refuse)
	}
	b := newTestBalancer(t, fakes, Config{Policy: RoundRobin, MaxRetries: 2})
	_, up, err := b.Resolve(testQuery, far())
	name := nameOf(up)
	if !errors.Is(err, errRefused) || name != "" {
		t.Fatalf("Resolve = %q, %v; want errRefused", name, err)
	}
	if got := counts(fakes); got[0] != 1 || got[1] != 1 || got[2] != 1 {
		t.Errorf("counts = %v, want one attempt on each", got)
	}
}

func TestNoRetryWhenZero(t *testing.T) {
	fakes := testPool(2)
	fakes[0].set(refuse)
	b := newTestBalancer(t, fakes, Config{Policy: Failover})
	if _, _, err := b.Resolve(testQuery, far()); !errors.Is(err, errRefused) {
		t.Fatalf("Resolve error = %v, want errRefused", err)
	}
	if got := fakes[1].calls.Load(); got != 0 {
		t.Errorf("u1 got %d queries with MaxRetries 0", got)
	}
}

func TestAnswerIsNotRetried(t *testing.T) {
	fakes := testPool(2)
	fakes[0].set(servfail)
	obs := newRecorder()
	b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 2}, obs)
	ans, up, err := b.Resolve(testQuery, far())
	name := nameOf(up)
	if err != nil || name != "u0" || ans[3]&0x0F != 2 {
		t.Fatalf("Resolve = %x from %q, %v; want u0's SERVFAIL", ans, name, err)
	}
	if fakes[1].calls.Load() != 0 || obs.retried.Load() != 0 || len(obs.health) != 0 {
		t.Error("a SERVFAIL answer was retried or marked the upstream down")
	}
}

// TestSlowAnswerIsNotFailure: an answer after 1.2 s, normal for a cold name
// at a public resolver, is the answer: no retry, and the upstream stays up.
func TestSlowAnswerIsNotFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{newFake("u0", answerAfter(1200*time.Millisecond)), newFake("u1", answer)}
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 2}, obs)
		_, up, err := b.Resolve(testQuery, time.Now().Add(4*time.Second))
		name := nameOf(up)
		if err != nil || name != "u0" {
			t.Fatalf("Resolve = %q, %v; want u0's answer", name, err)
		}
		if len(obs.health) != 0 || fakes[1].calls.Load() != 0 || obs.retried.Load() != 0 {
			t.Error("a slow answer marked u0 down or was retried")
		}
		b.Close()
	})
}

// TestBrokenConnectionFailsOver: an upstream whose connection falls silent
// fails the attempt (as the pool does after its attempt timeout); the query
// goes to the next upstream within its deadline, and the silent one is down.
func TestBrokenConnectionFailsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(3)
		// The pool retires a silent connection at half an attempt timeout;
		// at a whole one, the silence would tie with the attempt's own
		// deadline on the fake clock, and either could end the attempt.
		fakes[0].set(silentFor(750 * time.Millisecond))
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 2}, obs)
		_, up, err := b.Resolve(testQuery, time.Now().Add(4*time.Second))
		name := nameOf(up)
		if err != nil || name != "u1" {
			t.Fatalf("Resolve = %q, %v; want an answer from u1", name, err)
		}
		if e := obs.next(t); e != (event{"u0", false}) {
			t.Errorf("health change = %+v, want u0 down", e)
		}
		b.Close()
	})
}

// TestDeadlineIsNotFailure: a query that runs out of time was slow, not
// proof that the upstream is broken; the pool reports a broken one itself.
func TestDeadlineIsNotFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(1)
		fakes[0].set(stall)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{}, obs)
		_, _, err := b.Resolve(testQuery, time.Now().Add(time.Second))
		if !isTimeout(err) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Resolve error = %v, want a timeout", err)
		}
		if len(obs.health) != 0 {
			t.Errorf("health changed: %v", obs.health)
		}
		b.Close()
	})
}

func TestResolvePastDeadline(t *testing.T) {
	fakes := testPool(1)
	b := newTestBalancer(t, fakes, Config{})
	if _, _, err := b.Resolve(testQuery, time.Now().Add(-time.Second)); !isTimeout(err) {
		t.Fatalf("Resolve error = %v, want a timeout", err)
	}
	if fakes[0].calls.Load() != 0 {
		t.Error("a query past its deadline was sent")
	}
}

func TestHedgeFollowsFastUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{
			newFake("slow", answerAfter(time.Second)),
			newFake("fast", answerAfter(time.Millisecond)),
		}
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{
			Policy: Failover, MaxRetries: 1, HedgeAfter: 20 * time.Millisecond,
		}, obs)
		for range 3 {
			if got := resolve(t, b); got != "fast" {
				t.Fatalf("answered by %s, want fast", got)
			}
		}
		if got := obs.hedged.Load(); got != 3 {
			t.Errorf("Hedged called %d times, want 3", got)
		}
		if len(obs.health) != 0 {
			t.Error("an upstream was marked down")
		}
		b.Close()
	})
}

// TestCloseWaitsForHedgedAttempts: the attempts that lost to a hedge run on
// in goroutines of the Balancer's own, and Close returns only once they
// have.
func TestCloseWaitsForHedgedAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{
			newFake("slow", answerAfter(time.Second)),
			newFake("fast", answer),
		}
		b := newTestBalancer(t, fakes, Config{Policy: Failover, HedgeAfter: 20 * time.Millisecond})
		for range 3 {
			resolve(t, b)
		}
		synctest.Wait()
		if got := fakes[0].finished.Load(); got != 0 {
			t.Fatalf("%d losing attempts finished before their answers", got)
		}
		b.Close()
		if got := fakes[0].finished.Load(); got != 3 {
			t.Errorf("Close returned with %d of 3 losing attempts still running", 3-got)
		}
	})
}

func TestHedgeNotSentWhenFirstIsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{
			newFake("u0", answerAfter(time.Millisecond)),
			newFake("u1", answerAfter(time.Millisecond)),
		}
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Policy: Failover, HedgeAfter: 20 * time.Millisecond}, obs)
		for range 10 {
			resolve(t, b)
		}
		if obs.hedged.Load() != 0 || fakes[1].calls.Load() != 0 {
			t.Error("hedged a query that was answered before HedgeAfter")
		}
		b.Close()
	})
}

func TestHedgedRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(3)
		fakes[0].set(refuse)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{
			Policy: Failover, MaxRetries: 2, HedgeAfter: time.Second,
		}, obs)
		if got := resolve(t, b); got != "u1" {
			t.Errorf("answered by %s, want u1", got)
		}
		if obs.retried.Load() != 1 || obs.hedged.Load() != 0 {
			t.Errorf("retried %d, hedged %d; want 1 and 0", obs.retried.Load(), obs.hedged.Load())
		}
		b.Close()
	})
}

// TestProbeBackoffAndRecovery checks the probe schedule of a down
// upstream on the fake clock (100 ms, then doubling up to the cap), that it
// gets no client query meanwhile, and that a probe's answer brings it back.
func TestProbeBackoffAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(2)
		fakes[0].probed = make(chan bool, 16)
		fakes[0].set(refuse)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{
			Policy: RoundRobin, MaxRetries: 1, ProbeMaxBackoff: time.Second,
		}, obs)
		resolve(t, b)
		resolve(t, b)
		if e := obs.next(t); e != (event{"u0", false}) {
			t.Fatalf("health change = %+v, want u0 down", e)
		}
		last := time.Now()
		want := []time.Duration{100, 200, 400, 800, 1000, 1000}
		for i, w := range want {
			if ok := <-fakes[0].probed; ok {
				t.Fatalf("probe %d answered", i)
			}
			if got := time.Since(last); got != w*time.Millisecond {
				t.Errorf("probe %d came %v after the previous event, want %v", i, got, w*time.Millisecond)
			}
			last = time.Now()
			for range 10 {
				resolve(t, b)
			}
		}
		if got := fakes[0].calls.Load(); got != 1 {
			t.Errorf("u0 got %d client queries, want only the first", got)
		}
		fakes[0].set(answer)
		if ok := <-fakes[0].probed; !ok {
			t.Fatal("probe failed after u0 was fixed")
		}
		synctest.Wait()
		if e := obs.next(t); e != (event{"u0", true}) {
			t.Fatalf("health change = %+v, want u0 up", e)
		}
		before := fakes[0].calls.Load()
		for range 10 {
			resolve(t, b)
		}
		if got := fakes[0].calls.Load() - before; got != 5 {
			t.Errorf("u0 got %d of 10 queries after recovery, want 5", got)
		}
		b.Close()
	})
}

// TestBackoffGrowsUntilQuiet: a failure soon after a recovery doubles the
// wait; after ProbeResetAfter without failure the wait starts again at
// FirstBackoff.
func TestBackoffGrowsUntilQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(2)
		fakes[0].probed = make(chan bool, 16)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{
			Policy: Failover, MaxRetries: 1, ProbeResetAfter: 10 * time.Second,
		}, obs)
		// failAndRecover makes u0 fail one query, lets its next probe
		// answer, and returns how long u0 was down.
		failAndRecover := func() time.Duration {
			t.Helper()
			fakes[0].set(refuse)
			resolve(t, b)
			start := time.Now()
			fakes[0].set(answer)
			if ok := <-fakes[0].probed; !ok {
				t.Fatal("probe failed")
			}
			synctest.Wait()
			if e := obs.next(t); e != (event{"u0", false}) {
				t.Fatalf("health change = %+v, want u0 down", e)
			}
			if e := obs.next(t); e != (event{"u0", true}) {
				t.Fatalf("health change = %+v, want u0 up", e)
			}
			return time.Since(start)
		}
		for i, want := range []time.Duration{100, 200, 400} {
			if got := failAndRecover(); got != want*time.Millisecond {
				t.Errorf("outage %d lasted %v, want %v", i, got, want*time.Millisecond)
			}
		}
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if got := failAndRecover(); got != FirstBackoff {
			t.Errorf("outage after a quiet period lasted %v, want %v", got, FirstBackoff)
		}
		b.Close()
	})
}

// TestAllDownTriesLeastRecentlyFailed: right after every upstream went
// down, before any probe has confirmed it, a query still goes out, to the
// one whose last failure is the oldest, and its answer brings that one
// back: a blip must not fail every query. (No probe runs here: the first is
// due FirstBackoff after each failure, and the bubble's clock has moved 3 ms.)
func TestAllDownTriesLeastRecentlyFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(3)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{
			Policy: RoundRobin, ProbeMaxBackoff: time.Hour,
		}, obs)
		// Fail them in the order u1, u2, u0, a millisecond apart.
		for _, i := range []int{1, 2, 0} {
			b.fail(&b.hosts[i])
			time.Sleep(time.Millisecond)
		}
		for range 3 {
			obs.next(t)
		}
		if got := resolve(t, b); got != "u1" {
			t.Errorf("answered by %s, want u1, the least recently failed", got)
		}
		if e := obs.next(t); e != (event{"u1", true}) {
			t.Errorf("health change = %+v, want u1 up", e)
		}
		b.Close()
	})
}

// TestAllDownFailsAtOnceAfterAFailedProbe: once every upstream is down and
// has failed a probe since, a query goes to none of them and fails at once
// with ErrAllDown, before Start returns; probes go on, no further apart
// than AllDownProbeEvery however high ProbeMaxBackoff is, and the first one
// answered brings its upstream and the queries back.
func TestAllDownFailsAtOnceAfterAFailedProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(2)
		for _, f := range fakes {
			f.set(refuse)
			f.probed = make(chan bool, 16)
		}
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Policy: RoundRobin, MaxRetries: 1, ProbeMaxBackoff: time.Minute}, obs)
		if _, _, err := b.Resolve(testQuery, far()); !errors.Is(err, errRefused) {
			t.Fatalf("Resolve = %v, want the refusal", err)
		}
		obs.next(t)
		obs.next(t)
		// The window: both down, neither probed yet. The query still goes out.
		if _, _, err := b.Resolve(testQuery, far()); !errors.Is(err, errRefused) {
			t.Fatalf("Resolve in the window = %v, want the refusal", err)
		}
		sent := counts(fakes)
		if sent[0]+sent[1] != 4 {
			t.Fatalf("counts = %v, want 4 client queries in all", sent)
		}
		for i, f := range fakes {
			if ok := <-f.probed; ok {
				t.Fatalf("u%d answered its probe", i)
			}
		}
		synctest.Wait()
		fin := make(resolved, 1)
		b.Start(testQuery, far(), fin)
		select {
		case r := <-fin:
			// ErrAllDown itself, not wrapped: the proxy asks the error
			// itself whether it is Unreachable.
			if r.err != ErrAllDown || r.from != nil {
				t.Fatalf("Start ended with %v from %q, want ErrAllDown", r.err, nameOf(r.from))
			}
		default:
			t.Fatal("Start returned before ending the query")
		}
		if u, ok := ErrAllDown.(interface{ Unreachable() bool }); !ok || !u.Unreachable() {
			t.Fatal("ErrAllDown does not report Unreachable")
		}
		if _, _, err := b.Resolve(testQuery, far()); err != ErrAllDown {
			t.Fatalf("Resolve = %v, want ErrAllDown", err)
		}
		if got := counts(fakes); got[0] != sent[0] || got[1] != sent[1] {
			t.Fatalf("counts = %v, then %v: a query reached an unreachable upstream", sent, got)
		}
		// Each failed probe doubles the wait (200, 400, 800 ms), up to
		// AllDownProbeEvery, not ProbeMaxBackoff's minute.
		last := time.Now()
		for i, want := range []time.Duration{200 * ms, 400 * ms, 800 * ms, AllDownProbeEvery, AllDownProbeEvery} {
			if ok := <-fakes[0].probed; ok {
				t.Fatalf("probe %d answered", i)
			}
			if got := time.Since(last); got != want {
				t.Errorf("probe %d came %v after the one before, want %v", i, got, want)
			}
			last = time.Now()
		}
		fakes[0].set(answer)
		if ok := <-fakes[0].probed; !ok {
			t.Fatal("the probe after u0 was fixed failed")
		}
		if got := time.Since(last); got != AllDownProbeEvery {
			t.Errorf("the answered probe came %v after the one before, want %v", got, AllDownProbeEvery)
		}
		synctest.Wait()
		if e := obs.next(t); e != (event{"u0", true}) {
			t.Fatalf("health change = %+v, want u0 up", e)
		}
		if got := resolve(t, b); got != "u0" {
			t.Fatalf("answered by %s after the recovery, want u0", got)
		}
		b.Close()
	})
}

// TestAllDownBringsProbesForward: an upstream that has been down a while
// waits long between probes; when the last other one is found unreachable
// too, its next probe comes AllDownProbeEvery after that, not at the end of
// its long wait.
func TestAllDownBringsProbesForward(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(2)
		fakes[0].set(refuse)
		fakes[0].probed = make(chan bool, 16)
		fakes[1].probed = make(chan bool, 16)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 1}, obs)
		resolve(t, b) // u0 fails, u1 answers
		// u0's probes fail at 0.1, 0.3, 0.7, 1.5, 3.1, 6.3 and 12.7 s; the
		// next waits ProbeMaxBackoff's default, 10 s.
		for range 7 {
			<-fakes[0].probed
		}
		synctest.Wait()
		due := time.Now().Add(DefaultProbeMaxBackoff)
		time.Sleep(time.Second)
		fakes[1].set(refuse)
		if _, _, err := b.Resolve(testQuery, far()); !errors.Is(err, errRefused) {
			t.Fatalf("Resolve = %v, want the refusal", err)
		}
		if ok := <-fakes[1].probed; ok {
			t.Fatal("u1 answered its probe")
		}
		allDown := time.Now()
		<-fakes[0].probed
		if got := time.Since(allDown); got != AllDownProbeEvery {
			t.Errorf("u0's next probe came %v after every upstream was unreachable, want %v (it was due in %v)",
				got, AllDownProbeEvery, due.Sub(allDown))
		}
		b.Close()
	})
}

// TestRetryAfterEveryUpstreamFoundUnreachable: a query sent in the window
// whose upstream is found unreachable while it is out has waited already;
// its retries still go out, to the least recently failed upstream, as they
// would have in the window. A query that arrives then fails at once.
func TestRetryAfterEveryUpstreamFoundUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(1)
		release := make(chan struct{})
		fakes[0].set(func(_ context.Context, q []byte) ([]byte, error) {
			if !isProbe(fakes[0], q) {
				<-release
			}
			return nil, errRefused
		})
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{MaxRetries: 2}, obs)
		b.fail(&b.hosts[0])
		fin := make(resolved, 1)
		b.Start(testQuery, far(), fin) // in the window: goes to u0
		time.Sleep(FirstBackoff)       // the probe fails meanwhile
		synctest.Wait()
		if !b.hosts[0].unreachable.Load() {
			t.Fatal("u0 not unreachable after its failed probe")
		}
		if _, _, err := b.Resolve(testQuery, far()); err != ErrAllDown {
			t.Fatalf("a new query ended with %v, want ErrAllDown", err)
		}
		close(release)
		r := <-fin
		if !errors.Is(r.err, errRefused) {
			t.Fatalf("the query ended with %v, want the refusal", r.err)
		}
		if got := fakes[0].calls.Load(); got != 3 || obs.retried.Load() != 2 {
			t.Fatalf("u0 got %d client queries, %d retried; want the first and its 2 retries", got, obs.retried.Load())
		}
		b.Close()
	})
}

// TestTransferWithEveryUpstreamUnreachable: a zone transfer fails at once,
// as a query does, and no upstream gets it.
func TestTransferWithEveryUpstreamUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(1)
		fakes[0].set(refuse)
		b := newTestBalancer(t, fakes, Config{})
		b.Resolve(testQuery, far())
		time.Sleep(FirstBackoff)
		synctest.Wait()
		from, err := b.Transfer(testQuery, far(), time.Second, func([]byte) error { return nil })
		if err != ErrAllDown || from != nil {
			t.Fatalf("Transfer = %q, %v; want ErrAllDown", nameOf(from), err)
		}
		b.Close()
	})
}

func TestCloseStopsProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(2)
		fakes[0].set(refuse)
		b := newTestBalancer(t, fakes, Config{Policy: Failover})
		if _, _, err := b.Resolve(testQuery, far()); err == nil {
			t.Fatal("u0 answered while refusing")
		}
		b.Close()
		time.Sleep(time.Minute)
		if got := fakes[0].probes.Load(); got != 0 {
			t.Errorf("%d probes sent after Close", got)
		}
		// Resolve still works after Close, and failures start no probe.
		resolve(t, b)
		fakes[1].set(refuse)
		b.Resolve(testQuery, far())
		time.Sleep(time.Minute)
		if got := fakes[1].probes.Load(); got != 0 {
			t.Errorf("%d probes sent after Close", got)
		}
	})
}
