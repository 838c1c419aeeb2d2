// Package leakcheck fails a test binary that leaves goroutines of its own
// packages running after every test and cleanup has finished: a goroutine
// with no owner or no stop path outlives what started it.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests, then waits a bounded time for every goroutine whose
// stack mentions one of the given package paths to end, and exits non-zero
// naming those that do not. Use it as TestMain's body.
func Main(m *testing.M, packages ...string) {
	code := m.Run()
	if code == 0 {
		if leaked := wait(packages, 5*time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leakcheck: goroutines still running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// wait polls until no goroutine mentions packages or the bound passes. A
// goroutine that its owner has just stopped may need a moment to return, and
// there is no event to await for that.
func wait(packages []string, bound time.Duration) string {
	deadline := time.Now().Add(bound)
	for {
		leaked := find(packages)
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// find returns the stacks of the goroutines, other than this one, that run
// code from packages.
func find(packages []string) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "leakcheck.find") {
			continue
		}
		for _, p := range packages {
			if strings.Contains(g, p+".") {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}
