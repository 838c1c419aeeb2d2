package leakcheck

import (
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestMain is Main, as in every package. In a copy of this test binary
// that TestMainFailsOnALeak starts, it first leaves a goroutine behind for
// Main to find, or one that stops just after the tests.
func TestMain(m *testing.M) {
	stop, done := make(chan struct{}), make(chan struct{})
	switch os.Getenv(childEnv) {
	case "leak":
		go parked(stop, done)
	case "late":
		go parked(stop, done)
		time.AfterFunc(200*time.Millisecond, func() { close(stop) })
	}
	Main(m)
}

func TestModulePath(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info")
	}
	if got := modulePath(); got != bi.Main.Path || got == "" {
		t.Fatalf("modulePath() = %q, the build info's main module is %q", got, bi.Main.Path)
	}
}

func TestMentions(t *testing.T) {
	const m = "example.test/mod"
	for _, tt := range []struct {
		stack string
		want  bool
	}{
		{"goroutine 7 [chan receive]:\nexample.test/mod/upstream.(*Pool).loop(0xc000010000)\n\t/src/upstream/pool.go:12 +0x1", true},
		{"goroutine 7 [select]:\nnet.(*conn).Read(...)\ncreated by example.test/mod/proxy.Serve in goroutine 6\n\t/src/proxy/serve.go:3 +0x1", true},
		{"goroutine 7 [sleep]:\nexample.test/mod.serve()\n\t/src/serve.go:3 +0x1", true},
		{"goroutine 7 [sleep]:\nexample.test/mod_test.TestX.func1()\n\t/src/x_test.go:3 +0x1", true},
		{"goroutine 7 [sleep]:\nexample.test/mod/emit_test.TestX.gowrap1()\n\t/src/emit/x_test.go:3 +0x1", true},
		{"goroutine 7 [select]:\ngithub.com/miekg/dns.(*Server).serveUDP(0xc0)\n\t/go/pkg/mod/example.test/mod/x.go:1 +0x1\ncreated by github.com/miekg/dns.(*Server).ListenAndServe in goroutine 1", false},
		{"goroutine 7 [select]:\nexample.test/modular.Run()\n\t/src/x.go:1 +0x1", false},
		{"goroutine 7 [select]:\nexample.test/mod_other.Run()\n\t/src/x.go:1 +0x1", false},
		{"goroutine 1 [running]:\nmain.main()\n\t_testmain.go:46 +0xa5", false},
	} {
		if got := mentions(tt.stack, m); got != tt.want {
			t.Errorf("mentions(%q) = %v, want %v", tt.stack, got, tt.want)
		}
	}
}

// parked stands in for a goroutine with no stop path until stop closes.
func parked(stop <-chan struct{}, done chan<- struct{}) {
	<-stop
	close(done)
}

// TestWaitFindsALeak leaves a goroutine running where wait looks, then
// stops it and checks that wait lets it go.
func TestWaitFindsALeak(t *testing.T) {
	module := modulePath()
	if leaked := wait(module, 0); leaked != "" {
		t.Fatalf("goroutines counted before the test started one:\n%s", leaked)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go parked(stop, done)
	leaked := wait(module, 50*time.Millisecond)
	if !strings.Contains(leaked, "leakcheck.parked") {
		t.Fatalf("the parked goroutine was not found; wait returned:\n%s", leaked)
	}
	close(stop)
	<-done
	if leaked := wait(module, 5*time.Second); leaked != "" {
		t.Fatalf("a stopped goroutine is still counted:\n%s", leaked)
	}
}

// childEnv makes a copy of this test binary leave a goroutine behind, or
// stop one just after its tests (see TestMain).
const childEnv = "LEAKCHECK_TEST_CHILD"

// TestMainFailsOnALeak runs this test binary's Main the way every package
// does, once with a goroutine left running and once with one that ends a
// little after the tests.
func TestMainFailsOnALeak(t *testing.T) {
	run := func(mode string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+mode)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("leak")
	if err == nil || !strings.Contains(out, "leakcheck: goroutines still running") || !strings.Contains(out, "leakcheck.parked") {
		t.Fatalf("a leaked goroutine passed: err %v, output:\n%s", err, out)
	}
	if out, err := run("late"); err != nil {
		t.Fatalf("a goroutine that ends after the tests failed them: %v\n%s", err, out)
	}
}
