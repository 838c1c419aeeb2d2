// Package leakcheck fails a test binary that leaves goroutines of this
// module running after every test and cleanup has finished: a goroutine
// with no owner or no stop path outlives what started it.
//
// Every package's TestMain is the same line:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
package leakcheck

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests, then waits a bounded time for every goroutine whose
// stack mentions a package of this module to end, and exits non-zero
// naming those that do not. Use it as TestMain's body.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit: it returns the code to exit with, for a
// TestMain that has something of its own to undo after the tests.
func Run(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		if leaked := wait(modulePath(), 5*time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leakcheck: goroutines still running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	return code
}

// modulePath returns the path of the module this package belongs to. The
// package is internal, so only that module's tests can call Main.
func modulePath() string {
	const self = "/internal/leakcheck"
	p := reflect.TypeFor[marker]().PkgPath()
	if !strings.HasSuffix(p, self) {
		panic("leakcheck: package moved from " + self + ": " + p)
	}
	return strings.TrimSuffix(p, self)
}

type marker struct{}

// wait polls until no goroutine runs or was started by code of module, or
// the bound passes. A goroutine that its owner has just stopped may need a
// moment to return, and there is no event to await for that.
func wait(module string, bound time.Duration) string {
	deadline := time.Now().Add(bound)
	for {
		leaked := find(module)
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// find returns the stacks of the goroutines that run code of module or
// were started by it, other than the calling one and the test binary's
// main goroutine, which runs TestMain: from Main they are the same.
func find(module string) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	// runtime.Stack puts the calling goroutine first.
	goroutines := strings.Split(string(buf), "\n\n")[1:]
	var out []string
	for _, g := range goroutines {
		if mentions(g, module) && !strings.Contains(g, "\nmain.main()\n") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// mentions reports whether a goroutine's stack has a frame, or a "created
// by" line, in a package of module: the module's root package, any
// package under it, or the external test package of either. Source file lines, which
// start with a tab, do not count: a path on disk is not a package.
func mentions(stack, module string) bool {
	for line := range strings.SplitSeq(stack, "\n") {
		line = strings.TrimPrefix(line, "created by ")
		rest, ok := strings.CutPrefix(line, module)
		if ok && (strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, "_test.")) {
			return true
		}
	}
	return false
}
