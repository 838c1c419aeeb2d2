package balance

import (
	"testing"
	"testing/synctest"
	"time"
)

// within reports whether got is within tol (a fraction) of want.
func within(got, want int64, tol float64) bool {
	d := float64(got - want)
	return d <= tol*float64(want) && -d <= tol*float64(want)
}

func TestDistribution(t *testing.T) {
	const n = 3000
	tests := []struct {
		policy Policy
		// want is each upstream's expected share of n; tol the allowed
		// relative deviation. The random policies use a fixed seed.
		want []int64
		tol  float64
	}{
		{policy: RoundRobin, want: []int64{1000, 1000, 1000}, tol: 0},
		{policy: HistoricalConnections, want: []int64{1000, 1000, 1000}, tol: 0},
		{policy: Random, want: []int64{1000, 1000, 1000}, tol: 0.1},
		{policy: Availability, want: []int64{1000, 1000, 1000}, tol: 0.1},
		// Sequential queries leave nothing in flight: all tie, and ties
		// are broken at random.
		{policy: LeastOutstanding, want: []int64{1000, 1000, 1000}, tol: 0.1},
		{policy: Failover, want: []int64{3000, 0, 0}, tol: 0},
	}
	for _, tc := range tests {
		t.Run(string(tc.policy), func(t *testing.T) {
			fakes := testPool(3)
			b := newTestBalancer(t, fakes, Config{Policy: tc.policy})
			for range n {
				resolve(t, b)
			}
			got := counts(fakes)
			for i := range got {
				if !within(got[i], tc.want[i], tc.tol) {
					t.Errorf("counts = %v, want %v ± %.0f%%", got, tc.want, tc.tol*100)
					break
				}
			}
		})
	}
}

// TestFastestDistribution runs on the fake clock: the fakes answer after
// 30, 10 and 20 ms, so u1 should get nearly all queries, and the others the
// exploring share, about 1/48 each.
func TestFastestDistribution(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{
			newFake("u0", answerAfter(30*time.Millisecond)),
			newFake("u1", answerAfter(10*time.Millisecond)),
			newFake("u2", answerAfter(20*time.Millisecond)),
		}
		b := newTestBalancer(t, fakes, Config{Policy: Fastest})
		const n = 4800
		for range n {
			resolve(t, b)
		}
		got := counts(fakes)
		if got[1] < n*90/100 {
			t.Errorf("counts = %v: the fastest got less than 90%%", got)
		}
		for _, i := range []int{0, 2} {
			if got[i] == 0 || got[i] > n*5/100 {
				t.Errorf("counts = %v: u%d got no share or more than 5%%", got, i)
			}
		}
		b.Close()
	})
}

// TestFastestNoticesChange: when the fastest upstream slows down, the
// exploring share and the moving average move the traffic to the other.
func TestFastestNoticesChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{
			newFake("u0", answerAfter(5*time.Millisecond)),
			newFake("u1", answerAfter(20*time.Millisecond)),
		}
		b := newTestBalancer(t, fakes, Config{Policy: Fastest})
		for range 500 {
			resolve(t, b)
		}
		fakes[0].set(answerAfter(50 * time.Millisecond))
		for range 1000 {
			resolve(t, b)
		}
		before := counts(fakes)
		for range 1000 {
			resolve(t, b)
		}
		after := counts(fakes)
		if got := after[1] - before[1]; got < 900 {
			t.Errorf("after the slowdown u1 got %d of 1000 queries, want at least 900", got)
		}
		b.Close()
	})
}

// TestLeastOutstandingAvoidsBusy holds queries in flight on u0 and u1 and
// checks that the next ones go where fewest are waiting.
func TestLeastOutstandingAvoidsBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := []*fakeUpstream{newFake("u0", stall), newFake("u1", stall), newFake("u2", stall)}
		b := newTestBalancer(t, fakes, Config{Policy: LeastOutstanding})
		deadline := time.Now().Add(time.Second)
		// Six stalled queries spread two per upstream; nothing else can
		// happen while all are in flight.
		for range 6 {
			go b.Resolve(testQuery, deadline)
			synctest.Wait()
		}
		if got := counts(fakes); got[0] != 2 || got[1] != 2 || got[2] != 2 {
			t.Fatalf("six stalled queries landed as %v, want 2 each", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		// Queries that ran out of time are no failure: all stay up.
		for i := range b.hosts {
			if s := b.hosts[i].state.Load(); s != stateUp {
				t.Errorf("u%d state = %d after queries timed out, want up", i, s)
			}
		}
		// Two held on u0: sequential queries avoid it.
		fakes[1].set(answer)
		fakes[2].set(answer)
		fakes[0].inflight.Add(2)
		for range 100 {
			resolve(t, b)
		}
		fakes[0].inflight.Add(-2)
		if got := fakes[0].calls.Load(); got != 2 {
			t.Errorf("u0 got %d more queries while busiest", got-2)
		}
		b.Close()
	})
}

func TestFailoverSendsNothingToSecondWhileFirstHealthy(t *testing.T) {
	fakes := testPool(3)
	b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 2})
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				if _, _, err := b.Resolve(testQuery, far()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	if got := counts(fakes); got[0] != 1600 || got[1] != 0 || got[2] != 0 {
		t.Errorf("counts = %v, want all 1600 on u0", got)
	}
}

func TestAvailabilityPrefersCleanRecord(t *testing.T) {
	fakes := testPool(3)
	b := newTestBalancer(t, fakes, Config{Policy: Availability})
	b.hosts[1].state.Store(stateProbation)
	for range 300 {
		resolve(t, b)
	}
	if got := counts(fakes); got[1] != 0 || got[0] == 0 || got[2] == 0 {
		t.Errorf("counts = %v, want none on u1 (in probation), some on the others", got)
	}
	// With no clean upstream left, the one in probation is used.
	b.hosts[0].state.Store(stateDown)
	b.hosts[2].state.Store(stateDown)
	if got := resolve(t, b); got != "u1" {
		t.Errorf("answered by %s, want u1", got)
	}
}

func TestHistoricalCatchesUp(t *testing.T) {
	fakes := testPool(3)
	b := newTestBalancer(t, fakes, Config{Policy: HistoricalConnections})
	b.hosts[0].served.Store(100)
	b.hosts[1].served.Store(40)
	for range 60 {
		if got := resolve(t, b); got == "u0" {
			t.Fatal("u0 chosen while it has served the most")
		}
	}
	// u2 takes the first 40 alone, then u1 and u2 share the rest.
	if got := counts(fakes); got[1] != 10 || got[2] != 50 {
		t.Errorf("counts = %v, want [0 10 50] to even out the totals", got)
	}
}
