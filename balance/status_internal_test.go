package balance

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestStatusFollowsHealth walks one upstream through down, probation and
// up on the fake clock and checks what Status says at each step: the
// state, since when, the counts, the last error and its time, and that
// Changes tells of each change.
func TestStatusFollowsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(2)
		fakes[0].probed = make(chan bool, 16)
		fakes[1].set(answerAfter(3 * time.Millisecond))
		b := newTestBalancer(t, fakes, Config{Policy: Failover, MaxRetries: 1, ProbeResetAfter: 10 * time.Second})
		made := time.Now()

		st := b.Status()
		if len(st) != 2 || st[0].Name != "u0" || st[1].Name != "u1" {
			t.Fatalf("Status = %+v, want u0 and u1 in order", st)
		}
		for _, s := range st {
			if s.State != StateUp || !s.Since.Equal(made) || s.Answers != 0 || s.Failures != 0 ||
				s.LastError != nil || s.Latency != 0 {
				t.Fatalf("fresh %+v, want up since the start with nothing counted", s)
			}
		}
		select {
		case <-b.Changes():
			t.Fatal("Changes told of a change before any")
		default:
		}

		resolve(t, b) // u0 answers
		time.Sleep(time.Second)
		fakes[0].set(refuse)
		failedAt := time.Now()
		if got := resolve(t, b); got != "u1" { // u0 fails, u1 answers 3 ms later
			t.Fatalf("answered by %q, want u1", got)
		}
		<-b.Changes()
		st = b.Status()
		u0, u1 := st[0], st[1]
		if u0.State != StateDown || !u0.Since.Equal(failedAt) || u0.Answers != 1 || u0.Failures != 1 ||
			!errors.Is(u0.LastError, errRefused) || !u0.LastErrorAt.Equal(failedAt) {
			t.Fatalf("u0 after its failure: %+v", u0)
		}
		if u1.State != StateUp || u1.Answers != 1 || u1.Failures != 0 || u1.Latency != 3*time.Millisecond {
			t.Fatalf("u1 after answering in 3 ms: %+v", u1)
		}

		// The first probe, 100 ms on, fails too: the error is kept, and
		// counts as no attempt.
		if <-fakes[0].probed {
			t.Fatal("probe answered")
		}
		synctest.Wait()
		if st := b.Status()[0]; st.Failures != 1 || !st.LastErrorAt.Equal(failedAt.Add(FirstBackoff)) {
			t.Fatalf("u0 after a failed probe: %+v", st)
		}

		fakes[0].set(answer)
		if !<-fakes[0].probed {
			t.Fatal("probe failed after u0 was fixed")
		}
		synctest.Wait()
		<-b.Changes()
		back := time.Now()
		if st := b.Status()[0]; st.State != StateProbation || !st.Since.Equal(back) {
			t.Fatalf("u0 after its probe answered: %+v, want probation since %v", st, back)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		<-b.Changes()
		if st := b.Status()[0]; st.State != StateUp || !st.Since.Equal(back.Add(10*time.Second)) {
			t.Fatalf("u0 after its probation: %+v", st)
		}
		b.Close()
	})
}

// TestChangesNeverBlocks: changes nobody reads fold into one value, and
// the Balancer goes on.
func TestChangesNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes := testPool(2)
		for _, f := range fakes {
			f.set(refuse)
		}
		b := newTestBalancer(t, fakes, Config{Policy: RoundRobin, MaxRetries: 1})
		if _, _, err := b.Resolve(testQuery, far()); err == nil {
			t.Fatal("every upstream refuses, yet the query was answered")
		}
		<-b.Changes()
		select {
		case <-b.Changes():
			t.Fatal("two changes left two values")
		default:
		}
		for _, s := range b.Status() {
			if s.State != StateDown || s.Failures != 1 {
				t.Fatalf("%+v, want down after one failure", s)
			}
		}
		b.Close()
	})
}
