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
	b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 2, Observer: obs})
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
	_, name, err := b.Resolve(context.Background(), testQuery)
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
	if _, _, err := b.Resolve(context.Background(), testQuery); !errors.Is(err, errRefused) {
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
	b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 2, Observer: obs})
	ans, name, err := b.Resolve(context.Background(), testQuery)
	if err != nil || name != "u0" || ans[3]&0x0F != 2 {
		t.Fatalf("Resolve = %x from %q, %v; want u0's SERVFAIL", ans, name, err)
	}
	if fakes[1].calls.Load() != 0 || obs.retried.Load() != 0 || len(obs.health) != 0 {
		t.Error("a SERVFAIL answer was retried or marked the upstream down")
	}
}

func TestCallerCancellationIsNotFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(2)
		fakes[0].set(stall)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 2, Observer: obs})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, _, err := b.Resolve(ctx, testQuery)
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Resolve error = %v, want context.Canceled", err)
		}
		if len(obs.health) != 0 || fakes[1].calls.Load() != 0 {
			t.Error("a cancelled query marked u0 down or was retried")
		}
		b.Close()
	})
}

// TestStallDetectedWithinDeadline: with a deadline, each attempt gets its
// share of it, so a stalled upstream times out in time for a retry.
func TestStallDetectedWithinDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(3)
		fakes[0].set(stall)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 2, Observer: obs})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, name, err := b.Resolve(ctx, testQuery)
		if err != nil || name != "u1" {
			t.Fatalf("Resolve = %q, %v; want an answer from u1", name, err)
		}
		if e := obs.next(t); e != (event{"u0", false}) {
			t.Errorf("health change = %+v, want u0 down", e)
		}
		b.Close()
	})
}

func TestDeadlinePassingCountsAgainstUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(1)
		fakes[0].set(stall)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Observer: obs})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, _, err := b.Resolve(ctx, testQuery); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Resolve error = %v, want DeadlineExceeded", err)
		}
		if e := obs.next(t); e != (event{"u0", false}) {
			t.Errorf("health change = %+v, want u0 down", e)
		}
		b.Close()
	})
}

func TestHedgeFollowsFastUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{
			newFake("slow", answerAfter(time.Second)),
			newFake("fast", answerAfter(time.Millisecond)),
		}
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{
			Policy: Failover, MaxRetries: 1, HedgeAfter: 20 * time.Millisecond, Observer: obs,
		})
		// Fewer losses than maxLosses: slow stays up and keeps being
		// tried first.
		for range maxLosses - 1 {
			if got := resolve(t, b); got != "fast" {
				t.Fatalf("answered by %s, want fast", got)
			}
		}
		synctest.Wait()
		if got := fakes[0].cancelled.Load(); got != maxLosses-1 {
			t.Errorf("%d of %d losing attempts were cancelled", got, maxLosses-1)
		}
		if got := obs.hedged.Load(); got != maxLosses-1 {
			t.Errorf("Hedged called %d times, want %d", got, maxLosses-1)
		}
		if len(obs.health) != 0 {
			t.Error("an upstream was marked down")
		}
		b.Close()
	})
}

// TestHedgeLossesMarkStalledDown: an upstream whose attempts are always
// cancelled by a winning hedge never times out, so a run of losses with no
// answer in between marks it down instead. The caller cancels each query's
// context once it has the answer, as the proxy does.
func TestHedgeLossesMarkStalledDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{newFake("stalled", stall), newFake("fast", answer)}
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{
			Policy: Failover, MaxRetries: 2, HedgeAfter: 20 * time.Millisecond, Observer: obs,
		})
		query := func() string {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, name, err := b.Resolve(ctx, testQuery)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			return name
		}
		for range maxLosses {
			if got := query(); got != "fast" {
				t.Fatalf("answered by %s, want fast", got)
			}
		}
		if e := obs.next(t); e != (event{"stalled", false}) {
			t.Fatalf("health change = %+v, want stalled down", e)
		}
		query()
		if got := obs.hedged.Load(); got != maxLosses {
			t.Errorf("Hedged called %d times, want %d: the query after detection was hedged", got, maxLosses)
		}
		if got := fakes[0].calls.Load(); got != maxLosses {
			t.Errorf("stalled got %d client queries, want %d", got, maxLosses)
		}
		b.Close()
	})
}

// TestAnswerResetsLosses: a hedge loss followed by an answer does not count
// towards maxLosses.
func TestAnswerResetsLosses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{
			newFake("u0", answerAfter(time.Second)),
			newFake("u1", answerAfter(time.Millisecond)),
		}
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Policy: Failover, HedgeAfter: 20 * time.Millisecond, Observer: obs})
		for range 3 * maxLosses {
			fakes[0].set(answerAfter(time.Second))
			for range maxLosses - 1 {
				resolve(t, b)
				synctest.Wait() // the loser has counted its loss
			}
			fakes[0].set(answer)
			if got := resolve(t, b); got != "u0" {
				t.Fatalf("answered by %s, want u0", got)
			}
		}
		synctest.Wait()
		if len(obs.health) != 0 {
			t.Error("u0 was marked down though it answered between its losses")
		}
		b.Close()
	})
}

func TestHedgeNotSentWhenFirstIsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{
			newFake("u0", answerAfter(time.Millisecond)),
			newFake("u1", answerAfter(time.Millisecond)),
		}
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{Policy: Failover, HedgeAfter: 20 * time.Millisecond, Observer: obs})
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
			Policy: Failover, MaxRetries: 2, HedgeAfter: time.Second, Observer: obs,
		})
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
			Policy: RoundRobin, MaxRetries: 1, ProbeMaxBackoff: time.Second, Observer: obs,
		})
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
			Policy: Failover, MaxRetries: 1, ProbeResetAfter: 10 * time.Second, Observer: obs,
		})
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

// TestAllDownTriesLeastRecentlyFailed: when every upstream is down a query
// still goes out, to the one whose last failure is the oldest, and its
// answer brings that one back.
func TestAllDownTriesLeastRecentlyFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(3)
		obs := newRecorder()
		b := newTestBalancer(t, fakes, Config{
			Policy: RoundRobin, ProbeMaxBackoff: time.Hour, Observer: obs,
		})
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

func TestCloseStopsProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(2)
		fakes[0].set(refuse)
		b := newTestBalancer(t, fakes, Config{Policy: Failover})
		if _, _, err := b.Resolve(context.Background(), testQuery); err == nil {
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
		b.Resolve(context.Background(), testQuery)
		time.Sleep(time.Minute)
		if got := fakes[1].probes.Load(); got != 0 {
			t.Errorf("%d probes sent after Close", got)
		}
	})
}
