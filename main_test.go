package main_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/internal/leakcheck"
	"github.com/miekg/dns"
)

// binary is dotproxy built once for every test here.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dotproxy-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "dotproxy")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9-test", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		panic(err)
	}
	// The binary's own goroutines are in other processes; those of the
	// tests that run main's code in this one must end with them.
	code := leakcheck.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// command runs dotproxy with exactly the given DOTPROXY_* settings.
func command(env map[string]string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

func TestVersion(t *testing.T) {
	out, err := command(nil, "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "dotproxy v9.9.9-test" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	out, err := command(nil, "-h").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		"UPSTREAMS", "LISTEN", "ALLOW", "QUERY_TIMEOUT", "TLS_CA_FILE", "TLS_PINS",
		"UPSTREAM_MAX_CONNS", "UPSTREAM_WARM_CONNS", "UPSTREAM_MAX_INFLIGHT", "UPSTREAM_CONNECT_TIMEOUT",
		"UPSTREAM_HANDSHAKE_TIMEOUT", "UPSTREAM_IDLE_TIMEOUT", "UPSTREAM_ATTEMPT_TIMEOUT", "UPSTREAM_TCP_FASTOPEN",
		"CLIENT_TCP_IDLE_TIMEOUT", "CLIENT_TCP_MAX_CONNS", "CLIENT_TCP_MAX_INFLIGHT", "CLIENT_UDP_MAX_INFLIGHT",
		"CLIENT_UDP_SOCKETS", "POLICY", "MAX_RETRIES", "HEDGE_AFTER", "PROBE_NAME", "PROBE_TIMEOUT", "PROBE_MAX_BACKOFF", "PROBE_RESET_AFTER",
		"STATSD_ADDR", "STATSD_FORMAT", "STATSD_PREFIX", "STATSD_TAGS", "STATSD_FLUSH_INTERVAL", "STATSD_SINGLE_VALUE",
		"LOG_LEVEL", "LOG_FORMAT", "TRANSFER_TIMEOUT", "CLIENT_MAX_INFLIGHT_MIB", "LAMEDUCK",
		"RATE_LIMIT", "RATE_LIMIT_BURST", "RATE_LIMIT_SLIP", "RATE_LIMIT_IPV4_PREFIX", "RATE_LIMIT_IPV6_PREFIX",
		"RATE_LIMIT_EXEMPT",
	} {
		if !strings.Contains(string(out), "DOTPROXY_"+key+"  (") {
			t.Errorf("-h does not list DOTPROXY_%s", key)
		}
	}
}

func TestBadSettingStopsStartup(t *testing.T) {
	tests := []struct{ key, value string }{
		{"DOTPROXY_UPSTREAMS", "1.1.1.1:99999"},
		{"DOTPROXY_UPSTREAMS", "1.1.1.1#bad name"},
		{"DOTPROXY_UPSTREAMS", " , "},
		// Never a plaintext upstream: port 53 or a scheme is refused, not
		// tried with TLS.
		{"DOTPROXY_UPSTREAMS", "10.0.0.53:53"},
		{"DOTPROXY_UPSTREAMS", "1.1.1.1:853,udp://9.9.9.9"},
		{"DOTPROXY_LISTEN", "localhost:53"},
		{"DOTPROXY_LISTEN", "127.0.0.1"},
		{"DOTPROXY_ALLOW", "10.0.0.0/33"},
		{"DOTPROXY_QUERY_TIMEOUT", "soon"},
		{"DOTPROXY_QUERY_TIMEOUT", "-1s"},
		{"DOTPROXY_TRANSFER_TIMEOUT", "0s"},
		{"DOTPROXY_TRANSFER_TIMEOUT", "long"},
		{"DOTPROXY_LAMEDUCK", "-1s"},
		{"DOTPROXY_LAMEDUCK", "5"},
		{"DOTPROXY_CLIENT_MAX_INFLIGHT_MIB", "0"},
		{"DOTPROXY_CLIENT_MAX_INFLIGHT_MIB", "4097"},
		{"DOTPROXY_CLIENT_MAX_INFLIGHT_MIB", "16MiB"},
		{"DOTPROXY_PADDING", "random"},
		{"DOTPROXY_CLIENT_SUBNET", "strip"},
		{"DOTPROXY_TLS_CA_FILE", "/nonexistent/ca.pem"},
		{"DOTPROXY_TLS_CA_FILE", "/dev/null"},
		{"DOTPROXY_TLS_PINS", "not-base64!"},
		{"DOTPROXY_TLS_PINS", "YWJj"},
		{"DOTPROXY_UPSTREAM_MAX_CONNS", "0"},
		{"DOTPROXY_UPSTREAM_MAX_INFLIGHT", "70000"},
		{"DOTPROXY_UPSTREAM_WARM_CONNS", "9"},
		{"DOTPROXY_UPSTREAM_IDLE_TIMEOUT", "0s"},
		{"DOTPROXY_UPSTREAM_TCP_FASTOPEN", "maybe"},
		{"DOTPROXY_CLIENT_TCP_MAX_CONNS", "lots"},
		{"DOTPROXY_POLICY", "fastest_please"},
		{"DOTPROXY_MAX_RETRIES", "99"},
		{"DOTPROXY_HEDGE_AFTER", "-5ms"},
		{"DOTPROXY_PROBE_NAME", "bad..name"},
		{"DOTPROXY_STATSD_ADDR", "no-port"},
		{"DOTPROXY_STATSD_FORMAT", "graphite"},
		{"DOTPROXY_LOG_LEVEL", "loud"},
		{"DOTPROXY_LOG_FORMAT", "xml"},
		{"DOTPROXY_RATE_LIMIT", "fast"},
		{"DOTPROXY_RATE_LIMIT_BURST", "50"}, // with no rate: limiting is off
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			env := map[string]string{tt.key: tt.value, "DOTPROXY_LISTEN": "127.0.0.1:0"}
			if tt.key == "DOTPROXY_LISTEN" {
				env = map[string]string{tt.key: tt.value}
			}
			out := startupRefusal(t, env)
			if !strings.Contains(out, tt.key) {
				t.Fatalf("%q does not name %s", out, tt.key)
			}
			if tt.value != " , " && !strings.Contains(out, tt.value) {
				t.Fatalf("%q does not quote the value %q", out, tt.value)
			}
		})
	}
}

// Settings that contradict each other stop start-up with one line naming
// both, each with its value: running on, dotproxy would quietly lose what
// one of them is for (retries, hedging).
func TestContradictorySettingsStopStartup(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		names []string
	}{
		{"attempt as long as the query", map[string]string{"DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT": "4s"},
			[]string{`DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT="4s"`, `DOTPROXY_QUERY_TIMEOUT="4s"`}},
		{"query shorter than the default attempt", map[string]string{"DOTPROXY_QUERY_TIMEOUT": "1s"},
			[]string{`DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT="1500ms"`, `DOTPROXY_QUERY_TIMEOUT="1s"`}},
		{"hedge after the query", map[string]string{"DOTPROXY_HEDGE_AFTER": "5s"},
			[]string{`DOTPROXY_HEDGE_AFTER="5s"`, `DOTPROXY_QUERY_TIMEOUT="4s"`}},
		{"hedge at the query's end", map[string]string{"DOTPROXY_HEDGE_AFTER": "2s", "DOTPROXY_QUERY_TIMEOUT": "2s"},
			[]string{`DOTPROXY_HEDGE_AFTER="2s"`, `DOTPROXY_QUERY_TIMEOUT="2s"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"DOTPROXY_LISTEN": "127.0.0.1:0"}
			for k, v := range tt.env {
				env[k] = v
			}
			out := startupRefusal(t, env)
			for _, name := range tt.names {
				if !strings.Contains(out, name) {
					t.Fatalf("%q does not name %s", out, name)
				}
			}
		})
	}
}

// startupRefusal runs dotproxy with env, which it must refuse: it checks
// that the exit status is 2 and that stderr holds one line, and returns it.
func startupRefusal(t *testing.T, env map[string]string) string {
	t.Helper()
	cmd := command(env)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("exit %d (%v), want 2; stderr: %s", code, err, stderr.String())
	}
	out := strings.TrimSpace(stderr.String())
	if strings.Count(out, "\n") != 0 {
		t.Fatalf("want one line, got:\n%s", out)
	}
	return out
}

// proxyProcess is a running dotproxy.
type proxyProcess struct {
	cmd  *exec.Cmd
	addr string // where it listens, UDP and TCP

	mu     sync.Mutex
	logs   []map[string]any
	more   chan struct{} // closed and replaced at each new line; guarded by mu
	done   chan struct{} // closed when its stderr ends: it has exited
	exited chan struct{} // closed once it is waited for; ProcessState is set
}

// startProxy runs dotproxy against upstreams and waits for its start-up
// line, which names the bound address.
func startProxy(t *testing.T, env map[string]string) *proxyProcess {
	t.Helper()
	base := map[string]string{
		"DOTPROXY_LISTEN":     "127.0.0.1:0",
		"DOTPROXY_LOG_FORMAT": "json",
		"DOTPROXY_LOG_LEVEL":  "debug",
	}
	for k, v := range env {
		base[k] = v
	}
	p := &proxyProcess{cmd: command(base), more: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				t.Errorf("log line is not JSON: %s", sc.Text())
				continue
			}
			p.mu.Lock()
			p.logs = append(p.logs, line)
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
			if line["msg"] == "dotproxy started" {
				listen, _ := line["listen"].([]any)
				if len(listen) > 0 {
					started <- fmt.Sprint(listen[0])
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-p.done // Wait closes the pipe: only once it is read to the end
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	select {
	case p.addr = <-started:
	case <-p.done:
		t.Fatalf("dotproxy exited before it started: %v", p.allLogs())
	case <-time.After(20 * time.Second):
		t.Fatal("dotproxy did not start")
	}
	return p
}

func (p *proxyProcess) allLogs() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.logs...)
}

// awaitLog returns the first log line, old or new, for which match holds,
// and fails the test if none comes within a bound generous for a loaded
// machine, or the process exits without it.
func (p *proxyProcess) awaitLog(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	seen := 0
	for {
		p.mu.Lock()
		lines, more := p.logs[seen:], p.more
		seen = len(p.logs)
		p.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l
			}
		}
		select {
		case <-more:
		case <-p.done:
			if p.mu.Lock(); len(p.logs) > seen {
				p.mu.Unlock()
				continue // the last lines before the exit
			}
			p.mu.Unlock()
			t.Fatalf("dotproxy exited without logging %s", what)
		case <-timeout.C:
			t.Fatalf("dotproxy did not log %s within 10 s", what)
		}
	}
}

// msgIs matches a log line by its message.
func msgIs(msg string) func(map[string]any) bool {
	return func(l map[string]any) bool { return l["msg"] == msg }
}

// stop sends SIGTERM and returns the exit code.
func (p *proxyProcess) stop(t *testing.T) int {
	t.Helper()
	code, _ := p.stopWithin(t, time.Minute)
	return code
}

// stopWithin sends SIGTERM, waits at most limit for the process to exit,
// and returns its exit code and the time from the signal to the exit. It
// fails the test if the process is still running at limit.
func (p *proxyProcess) stopWithin(t *testing.T, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	select {
	case <-p.exited:
	case <-timeout.C:
		t.Fatalf("dotproxy still running %v after SIGTERM", limit)
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

func upstreamEnv(t *testing.T, srvs ...*dottest.Server) map[string]string {
	t.Helper()
	// Every test server has its own CA: trust them all through one bundle.
	path := filepath.Join(t.TempDir(), "ca.pem")
	var bundle []byte
	var ups []string
	for _, s := range srvs {
		bundle = append(bundle, s.CA.PEM...)
		ups = append(ups, s.Addr+"#dns.test")
	}
	if err := os.WriteFile(path, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"DOTPROXY_UPSTREAMS":   strings.Join(ups, ","),
		"DOTPROXY_TLS_CA_FILE": path,
	}
}

func ask(t *testing.T, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	a, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	if a.Id != q.Id {
		t.Fatalf("answer id %d, query id %d", a.Id, q.Id)
	}
	return a
}

func TestEndToEnd(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Concurrent: true})
	p := startProxy(t, upstreamEnv(t, srv))
	for _, network := range []string{"udp", "tcp"} {
		a := ask(t, network, p.addr, "e2e.example", dns.TypeA)
		if a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 {
			t.Fatalf("%s: %v", network, a)
		}
	}
	// Larger than 512 bytes: truncated over UDP, whole over TCP.
	if a := ask(t, "udp", p.addr, "big.example", dns.TypeTXT); !a.Truncated {
		t.Fatalf("UDP answer to big.example not truncated: %d records", len(a.Answer))
	}
	if a := ask(t, "tcp", p.addr, "big.example", dns.TypeTXT); a.Truncated || len(a.Answer) != 12 {
		t.Fatalf("TCP answer to big.example: TC %v, %d records", a.Truncated, len(a.Answer))
	}
	hc := command(map[string]string{"DOTPROXY_LISTEN": p.addr}, "healthcheck")
	if out, err := hc.CombinedOutput(); err != nil {
		t.Fatalf("healthcheck: %v %s", err, out)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	// At debug level every query is logged with what was asked and answered.
	logged := false
	for _, l := range p.allLogs() {
		if l["msg"] == "query" && l["question"] == "e2e.example. A" && l["rcode"] == "NOERROR" &&
			l["upstream"] == srv.Addr && l["transport"] == "udp" {
			logged = true
		}
	}
	if !logged {
		t.Fatal("no debug log line for the UDP query to e2e.example")
	}
	// The log says why it stopped: an operator reading `docker logs` after a
	// restart wants to know whether it was asked to stop or failed.
	why := false
	for _, l := range p.allLogs() {
		if strings.HasPrefix(fmt.Sprint(l["msg"]), "shutting down") && l["why"] == "received SIGTERM" {
			why = true
		}
	}
	if !why {
		t.Fatalf("no log line names SIGTERM as why it stopped: %v", p.allLogs())
	}
	if raw := srv.Raw(); strings.Contains(string(raw), "e2e") || strings.Contains(string(raw), "example") {
		t.Fatal("a query name crossed the wire in plaintext")
	}
}

func TestHealthcheckFailsWithoutListener(t *testing.T) {
	cmd := command(map[string]string{
		"DOTPROXY_LISTEN":                   "127.0.0.1:1",
		"DOTPROXY_QUERY_TIMEOUT":            "200ms",
		"DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT": "100ms", // shorter than the query's
	}, "healthcheck")
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %d (%v), want 1", cmd.ProcessState.ExitCode(), err)
	}
}

func TestWrongCertificateGivesServFailAndNoPlaintext(t *testing.T) {
	ca := dottest.NewCA(t)
	cert := ca.Leaf(t, "impostor.test")
	srv := dottest.Start(t, dottest.Options{Cert: &cert})
	env := upstreamEnv(t, srv)
	env["DOTPROXY_TLS_CA_FILE"] = ca.WritePEM(t)
	env["DOTPROXY_QUERY_TIMEOUT"] = "500ms"
	env["DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT"] = "250ms" // shorter than the query's
	p := startProxy(t, env)
	for _, network := range []string{"udp", "tcp"} {
		if a := ask(t, network, p.addr, "secretname.example", dns.TypeA); a.Rcode != dns.RcodeServerFailure {
			t.Fatalf("%s: rcode %s, want SERVFAIL", network, dns.RcodeToString[a.Rcode])
		}
	}
	if srv.Queries() != 0 {
		t.Fatalf("the impostor read %d queries", srv.Queries())
	}
	if strings.Contains(string(srv.Raw()), "secretname") {
		t.Fatal("the query name reached the impostor in plaintext")
	}
	p.stop(t)
	warned := false
	for _, l := range p.allLogs() {
		if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["err"]), "impostor.test") {
			warned = true
		}
	}
	if !warned {
		t.Fatal("the verification failure was not logged with its reason")
	}
}

func TestACLRefuses(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	env := upstreamEnv(t, srv)
	env["DOTPROXY_ALLOW"] = "192.0.2.0/24"
	p := startProxy(t, env)
	if a := ask(t, "udp", p.addr, "no.example", dns.TypeA); a.Rcode != dns.RcodeRefused {
		t.Fatalf("rcode %s, want REFUSED", dns.RcodeToString[a.Rcode])
	}
	if srv.Queries() != 0 {
		t.Fatal("a refused query reached the upstream")
	}
}

func TestServerClosingConnectionsFailsNoClientQuery(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{CloseAfter: 3})
	p := startProxy(t, upstreamEnv(t, srv))
	for i := range 30 {
		network := []string{"udp", "tcp"}[i%2]
		if a := ask(t, network, p.addr, fmt.Sprintf("n%d.example", i), dns.TypeA); a.Rcode != dns.RcodeSuccess {
			t.Fatalf("query %d: %s", i, dns.RcodeToString[a.Rcode])
		}
	}
	if srv.Accepted() < 5 {
		t.Fatalf("server accepted only %d connections; it closes each after 3 answers", srv.Accepted())
	}
}

func TestReadmeDocumentsEveryVariable(t *testing.T) {
	help, err := command(nil, "-h").Output()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(help), "\n") {
		key, rest, ok := strings.Cut(strings.TrimSpace(line), "  (")
		if !ok || !strings.HasPrefix(key, "DOTPROXY_") {
			continue
		}
		n++
		// The README row carries the same default as -h.
		def := ""
		if _, d, ok := strings.Cut(strings.TrimSuffix(rest, ")"), ", default "); ok {
			def = "`" + d + "`"
		}
		row := "| `" + key + "` |"
		i := strings.Index(string(readme), row)
		if i < 0 {
			t.Errorf("README has no row for %s", key)
			continue
		}
		end := strings.IndexByte(string(readme[i:]), '\n')
		if def != "" && !strings.Contains(string(readme[i:i+end]), def) {
			t.Errorf("README's row for %s lacks the default %s", key, def)
		}
	}
	if n < 30 {
		t.Fatalf("found only %d variables in -h", n)
	}
}

func TestUnresolvableStatsdHostLeavesDNSWorking(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	env := upstreamEnv(t, srv)
	// Not a valid domain name, so that the lookup fails here and no
	// query leaves the machine; the Go resolver is forced for that reason.
	env["DOTPROXY_STATSD_ADDR"] = "no-such!host:8125"
	env["GODEBUG"] = "netdns=go"
	env["DOTPROXY_STATSD_FORMAT"] = "statsd"
	p := startProxy(t, env)
	if a := ask(t, "udp", p.addr, "still.example", dns.TypeA); a.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %s", dns.RcodeToString[a.Rcode])
	}
	warned := false
	for _, l := range p.allLogs() {
		if l["level"] == "WARN" && l["msg"] == "metrics are off" {
			warned = true
		}
	}
	if !warned {
		t.Fatal("no warning that metrics are off")
	}
}

func TestThousandConcurrentClientsShareAFewConnections(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Concurrent: true})
	env := upstreamEnv(t, srv)
	env["DOTPROXY_UPSTREAM_WARM_CONNS"] = "0"
	// What is tested is sharing, not recovery: on a starved machine a
	// burst of 1,000 can keep answers waiting past the default attempt
	// timeout's half, when a connection that has read nothing is retired.
	env["DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT"] = "3500ms"
	p := startProxy(t, env)
	const clients = 1000
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			network := []string{"udp", "tcp"}[i%2]
			q := new(dns.Msg)
			q.SetQuestion(fmt.Sprintf("c%d.example.", i), dns.TypeA)
			c := &dns.Client{Net: network, Timeout: 5 * time.Second}
			a, _, err := c.Exchange(q, p.addr)
			// A burst of 500 datagrams can overflow a socket buffer on a
			// loaded machine; a stub resolver asks again, and so does this
			// one, a bounded number of times.
			for try := 0; err != nil && network == "udp" && try < 3; try++ {
				a, _, err = c.Exchange(q, p.addr)
			}
			switch {
			case err != nil:
				errs <- fmt.Errorf("client %d: %w", i, err)
			case a.Id != q.Id || a.Rcode != dns.RcodeSuccess || a.Question[0].Name != q.Question[0].Name:
				errs <- fmt.Errorf("client %d: wrong answer %v", i, a)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := srv.Accepted(); got > 4 {
		t.Fatalf("%d concurrent clients took %d upstream connections; the cap is 4", clients, got)
	}
}

func TestBadBootstrapStopsStartup(t *testing.T) {
	for _, v := range []string{"dns.google", "dns.google:53", "1.1.1.1:99999", "[::1]:x", "9.9.9.9,resolver"} {
		t.Run(v, func(t *testing.T) {
			cmd := command(map[string]string{
				"DOTPROXY_BOOTSTRAP": v,
				"DOTPROXY_UPSTREAMS": "127.0.0.1:1",
				"DOTPROXY_LISTEN":    "127.0.0.1:0",
			})
			var stderr strings.Builder
			cmd.Stderr = &stderr
			cmd.Run()
			out := strings.TrimSpace(stderr.String())
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, out)
			}
			want := fmt.Sprintf("dotproxy: DOTPROXY_BOOTSTRAP=%q: ", v)
			if strings.Count(out, "\n") != 0 || !strings.HasPrefix(out, want) {
				t.Fatalf("want one line starting %s, got:\n%s", want, out)
			}
		})
	}
}

// bootstrapServer is a plain-DNS server on loopback (UDP and TCP on one
// port) that answers A queries for every name with 127.0.0.1, empty
// otherwise, or every query with rcode when that is not NOERROR, and
// records the names it was asked.
type bootstrapServer struct {
	addr string
	mu   sync.Mutex
	asks []string
}

func startBootstrapServer(t *testing.T, rcode int) *bootstrapServer {
	t.Helper()
	b := &bootstrapServer{}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		a := new(dns.Msg)
		a.SetRcode(q, rcode)
		if len(q.Question) == 1 {
			b.mu.Lock()
			b.asks = append(b.asks, dns.TypeToString[q.Question[0].Qtype]+" "+q.Question[0].Name)
			b.mu.Unlock()
			if q.Question[0].Qtype == dns.TypeA && rcode == dns.RcodeSuccess {
				rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 127.0.0.1")
				a.Answer = append(a.Answer, rr)
			}
		}
		w.WriteMsg(a)
	})
	// UDP picks the port and TCP follows it; a port that a client
	// connection holds for TCP is tried again with another, a bounded
	// number of times.
	var udp net.PacketConn
	var tcp net.Listener
	for try := 0; ; try++ {
		var err error
		if udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		b.addr = udp.LocalAddr().String()
		if tcp, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		udp.Close()
		if try == 10 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
	servers := []*dns.Server{
		{PacketConn: udp, Handler: handler},
		{Listener: tcp, Handler: handler},
	}
	for _, s := range servers {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Shutdown()
		}
	})
	return b
}

func (b *bootstrapServer) asked() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.asks...)
}

// An upstream named by host name is resolved through DOTPROXY_BOOTSTRAP
// alone: the name exists nowhere else (.test is reserved), so an answer
// through it proves the system resolver was not asked.
func TestBootstrapResolvesUpstreamNames(t *testing.T) {
	boot := startBootstrapServer(t, dns.RcodeSuccess)
	srv := dottest.Start(t, dottest.Options{})
	env := upstreamEnv(t, srv)
	_, port, _ := net.SplitHostPort(srv.Addr)
	env["DOTPROXY_UPSTREAMS"] = "dot.bootstrap.test:" + port + "#dns.test"
	// An unreachable first server: lookups must move on to the next one.
	env["DOTPROXY_BOOTSTRAP"] = "127.0.0.1:1," + boot.addr
	p := startProxy(t, env)
	for i, network := range []string{"udp", "tcp", "udp"} {
		if a := ask(t, network, p.addr, fmt.Sprintf("b%d.example", i), dns.TypeA); a.Rcode != dns.RcodeSuccess {
			t.Fatalf("query %d over %s: %s", i, network, dns.RcodeToString[a.Rcode])
		}
	}
	found := false
	for _, q := range boot.asked() {
		if q == "A dot.bootstrap.test." {
			found = true
		}
	}
	if !found {
		t.Fatalf("the bootstrap server was not asked for the upstream's name; it saw %q", boot.asked())
	}
	if srv.Queries() < 3 {
		t.Fatalf("upstream saw %d queries, want at least 3", srv.Queries())
	}
}

// flood sends n UDP queries to addr, window at a time, reading what answers
// come back for each window within a bound, and returns how many were
// answered.
func flood(t *testing.T, addr string, n, window int) int {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	answered := 0
	buf := make([]byte, 1500)
	for sent := 0; sent < n; sent += window {
		for i := range window {
			q := new(dns.Msg)
			q.SetQuestion(fmt.Sprintf("f%d.example.", sent+i), dns.TypeA)
			wire, err := q.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(wire); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		for range window {
			if _, err := c.Read(buf); err != nil {
				break
			}
			answered++
		}
	}
	return answered
}

// Stopping takes at most DOTPROXY_QUERY_TIMEOUT + 1 s whatever the statsd
// server does. A DogStatsD socket that is bound and never read held the exit
// for the Datadog client's write timeout (100 ms) once per buffered
// datagram, 12 s and more after some traffic; one whose server has gone,
// leaving its file, for the client's reconnection backoff per datagram.
func TestStopIsBoundedWhateverTheStatsdSocketDoes(t *testing.T) {
	for _, tt := range []struct {
		name string
		gone bool
	}{{"unread", false}, {"gone", true}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := dottest.Start(t, dottest.Options{Concurrent: true})
			env := upstreamEnv(t, srv)
			dir, err := os.MkdirTemp("", "dotproxy") // short: a socket path has 108 bytes
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			sock := filepath.Join(dir, "dsd.sock")
			conn, err := net.ListenPacket("unixgram", sock)
			if err != nil {
				t.Fatal(err)
			}
			if tt.gone {
				conn.Close() // the file stays: connecting is refused
			} else {
				t.Cleanup(func() { conn.Close() })
			}
			env["DOTPROXY_STATSD_ADDR"] = "unix://" + sock
			// A line per sample: many datagrams from a little traffic.
			env["DOTPROXY_STATSD_SINGLE_VALUE"] = "true"
			env["DOTPROXY_QUERY_TIMEOUT"] = "1s"
			env["DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT"] = "500ms"
			env["DOTPROXY_LOG_LEVEL"] = "info"
			p := startProxy(t, env)
			answered := flood(t, p.addr, 3000, 50)

			code, took := p.stopWithin(t, time.Minute)
			t.Logf("%d queries answered; exit %d %v after SIGTERM", answered, code, took)
			if code != 0 {
				t.Fatalf("exit %d after SIGTERM, want 0", code)
			}
			// What the design guarantees, not a benchmark: the query
			// timeout for the queries in flight, and a second for the rest.
			const bound = time.Second + time.Second
			if took > bound {
				t.Fatalf("exit %v after SIGTERM; the bound is DOTPROXY_QUERY_TIMEOUT + 1 s = %v", took, bound)
			}
			if !tt.gone {
				p.awaitLog(t, "that metrics were not all sent", func(l map[string]any) bool {
					return l["level"] == "WARN" && strings.HasPrefix(fmt.Sprint(l["msg"]), "metrics not all sent")
				})
			}
			if last := p.allLogs(); last[len(last)-1]["msg"] != "dotproxy stopped" {
				t.Fatalf("the last log line is %v, want \"dotproxy stopped\"", last[len(last)-1])
			}
		})
	}
}

// runWithin runs cmd, which should stop by itself, and returns its exit
// code and what it wrote to stderr; it kills it and fails the test if it
// still runs after limit.
func runWithin(t *testing.T, cmd *exec.Cmd, limit time.Duration) (int, string) {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), stderr.String()
	case <-timeout.C:
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running after %v; stderr: %s", limit, stderr.String())
		panic("unreachable")
	}
}

// A DOTPROXY_* variable that dotproxy does not read stops start-up, with
// one line naming it and, where one is close, the setting probably meant:
// ignored, DOTPROXY_UPSTREAM=... would send every query to the default
// resolvers. The health check reads the same settings, and checks them too.
func TestUnknownSettingStopsStartup(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a letter short", map[string]string{"DOTPROXY_UPSTREAM": "9.9.9.9"},
			"dotproxy: DOTPROXY_UPSTREAM: unknown setting; did you mean DOTPROXY_UPSTREAMS?"},
		{"a letter out", map[string]string{"DOTPROXY_LISTN": ":5353"},
			"dotproxy: DOTPROXY_LISTN: unknown setting; did you mean DOTPROXY_LISTEN?"},
		{"a word run together", map[string]string{"DOTPROXY_UPSTREAM_MAXCONNS": "8"},
			"dotproxy: DOTPROXY_UPSTREAM_MAXCONNS: unknown setting; did you mean DOTPROXY_UPSTREAM_MAX_CONNS?"},
		{"lower case", map[string]string{"dotproxy_upstreams": "9.9.9.9"},
			"dotproxy: dotproxy_upstreams: unknown setting; did you mean DOTPROXY_UPSTREAMS?"},
		{"nothing close", map[string]string{"DOTPROXY_CACHE_SIZE": "1000"},
			"dotproxy: DOTPROXY_CACHE_SIZE: unknown setting (dotproxy -h lists every one)"},
		{"several", map[string]string{"DOTPROXY_UPSTREAM": "9.9.9.9", "DOTPROXY_CACHE_SIZE": "1000"},
			"dotproxy: unknown settings: DOTPROXY_CACHE_SIZE, DOTPROXY_UPSTREAM (did you mean DOTPROXY_UPSTREAMS?)"},
		// The names of orchestrators' link variables, with values that no
		// orchestrator gives them, are settings someone typed: caught.
		{"service link name, host name value", map[string]string{"DOTPROXY_SERVICE_HOST": "dotproxy.default.svc"},
			"dotproxy: DOTPROXY_SERVICE_HOST: unknown setting (dotproxy -h lists every one)"},
		{"link port name, bare port value", map[string]string{"DOTPROXY_PORT": "5353"},
			"dotproxy: DOTPROXY_PORT: unknown setting (dotproxy -h lists every one)"},
		{"link variable of another port", map[string]string{"DOTPROXY_PORT_53_UDP": "udp://10.0.0.11:5353"},
			"dotproxy: DOTPROXY_PORT_53_UDP: unknown setting (dotproxy -h lists every one)"},
	}
	for _, tt := range tests {
		for _, args := range [][]string{nil, {"healthcheck"}} {
			t.Run(strings.Join(append([]string{tt.name}, args...), " "), func(t *testing.T) {
				env := map[string]string{"DOTPROXY_LISTEN": "127.0.0.1:0", "DOTPROXY_UPSTREAMS": "127.0.0.1:1"}
				for k, v := range tt.env {
					env[k] = v
				}
				code, stderr := runWithin(t, command(env, args...), 10*time.Second)
				if code != 2 {
					t.Fatalf("exit %d, want 2; stderr: %s", code, stderr)
				}
				if got := strings.TrimSuffix(stderr, "\n"); got != tt.want {
					t.Fatalf("stderr:\n%s\nwant the one line:\n%s", got, tt.want)
				}
			})
		}
	}
}

// What Kubernetes puts into every pod of a namespace with Services named
// dotproxy and dotproxy-metrics, and Docker into a container linked to one
// called dotproxy (--link dotproxy), must not stop start-up.
func TestOrchestratorVariablesDoNotStopStartup(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	env := upstreamEnv(t, srv)
	for k, v := range map[string]string{
		"DOTPROXY_SERVICE_HOST":                  "10.0.0.11",
		"DOTPROXY_SERVICE_PORT":                  "53",
		"DOTPROXY_SERVICE_PORT_DNS_UDP":          "53",
		"DOTPROXY_SERVICE_PORT_DNS_TCP":          "53",
		"DOTPROXY_PORT":                          "udp://10.0.0.11:53",
		"DOTPROXY_PORT_53_UDP":                   "udp://10.0.0.11:53",
		"DOTPROXY_PORT_53_UDP_PROTO":             "udp",
		"DOTPROXY_PORT_53_UDP_PORT":              "53",
		"DOTPROXY_PORT_53_UDP_ADDR":              "10.0.0.11",
		"DOTPROXY_PORT_53_TCP":                   "tcp://10.0.0.11:53",
		"DOTPROXY_PORT_53_TCP_PROTO":             "tcp",
		"DOTPROXY_PORT_53_TCP_PORT":              "53",
		"DOTPROXY_PORT_53_TCP_ADDR":              "10.0.0.11",
		"DOTPROXY_METRICS_SERVICE_HOST":          "fd00::11",
		"DOTPROXY_METRICS_SERVICE_PORT":          "8125",
		"DOTPROXY_METRICS_PORT":                  "udp://[fd00::11]:8125",
		"DOTPROXY_METRICS_PORT_8125_UDP":         "udp://[fd00::11]:8125",
		"DOTPROXY_METRICS_PORT_8125_UDP_PROTO":   "udp",
		"DOTPROXY_METRICS_PORT_8125_UDP_PORT":    "8125",
		"DOTPROXY_METRICS_PORT_8125_UDP_ADDR":    "fd00::11",
		"DOTPROXY_NAME":                          "/app/dotproxy",
		"DOTPROXY_ENV_DOTPROXY_UPSTREAMS":        "1.1.1.1:853",
		"DOTPROXY_ENV_TZ":                        "Europe/Paris",
		"DOTPROXY_METRICS_SERVICE_PORT_STATSD_1": "8125",
	} {
		env[k] = v
	}
	p := startProxy(t, env)
	if a := ask(t, "udp", p.addr, "linked.example", dns.TypeA); a.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %s", dns.RcodeToString[a.Rcode])
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// Without DOTPROXY_UPSTREAMS every query goes to public resolvers the user
// never named, and start-up says so, on a line of its own, at warn level.
func TestDefaultUpstreamsAreNamedAtStartup(t *testing.T) {
	// No warm connection and no query: nothing leaves the machine.
	p := startProxy(t, map[string]string{"DOTPROXY_UPSTREAM_WARM_CONNS": "0"})
	l := p.awaitLog(t, "that the default upstreams are in use", func(l map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(l["msg"]), "DOTPROXY_UPSTREAMS is not set")
	})
	const want = "DOTPROXY_UPSTREAMS is not set: every query goes to the built-in default resolvers 1.1.1.1:853, 1.0.0.1:853"
	if l["level"] != "WARN" || l["msg"] != want {
		t.Fatalf("got %v, want a WARN line %q", l, want)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}

	srv := dottest.Start(t, dottest.Options{})
	q := startProxy(t, upstreamEnv(t, srv))
	for _, l := range q.allLogs() {
		if strings.Contains(fmt.Sprint(l["msg"]), "default resolvers") {
			t.Fatalf("DOTPROXY_UPSTREAMS is set, yet: %v", l)
		}
	}
}

// SIGHUP, which ended dotproxy with no word in the log, says that settings
// are not reloaded and recycles the upstream connections, every time: the
// upstream sees a new connection, queries are answered throughout, and
// SIGTERM still stops it cleanly.
func TestSIGHUPRecyclesUpstreamConnections(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Concurrent: true})
	p := startProxy(t, upstreamEnv(t, srv))
	if a := ask(t, "udp", p.addr, "before.example", dns.TypeA); a.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %s", dns.RcodeToString[a.Rcode])
	}
	for i := range 3 {
		accepted := srv.Accepted()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		n := 0
		l := p.awaitLog(t, fmt.Sprintf("SIGHUP line %d", i+1), func(l map[string]any) bool {
			if strings.HasPrefix(fmt.Sprint(l["msg"]), "received SIGHUP: settings come only from the environment and are not reloaded") {
				n++
			}
			return n == i+1
		})
		if l["level"] != "INFO" {
			t.Fatalf("SIGHUP line at %v, want INFO", l["level"])
		}
		if c, _ := l["connections"].(float64); c < 1 {
			t.Fatalf("SIGHUP %d recycled %v connections, want at least the one open: %v", i+1, l["connections"], l)
		}
		for srv.Accepted() <= accepted {
			dottest.Await(t, srv.ConnAccepted(), fmt.Sprintf("a new upstream connection after SIGHUP %d", i+1))
		}
		for _, network := range []string{"udp", "tcp"} {
			name := fmt.Sprintf("after%d.example", i)
			if a := ask(t, network, p.addr, name, dns.TypeA); a.Rcode != dns.RcodeSuccess {
				t.Fatalf("%s after SIGHUP %d: rcode %s", network, i+1, dns.RcodeToString[a.Rcode])
			}
		}
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
}

// systemResolvers returns the servers the Go resolver would ask, from
// /etc/resolv.conf, or its defaults when that names none.
func systemResolvers(t *testing.T) []string {
	t.Helper()
	var servers []string
	conf, _ := os.ReadFile("/etc/resolv.conf")
	for _, line := range strings.Split(string(conf), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			servers = append(servers, net.JoinHostPort(f[1], "53"))
		}
	}
	if len(servers) == 0 {
		servers = []string{"127.0.0.1:53", "[::1]:53"}
	}
	return servers
}

// With DOTPROXY_BOOTSTRAP set, a failed lookup of an upstream's host name
// names the bootstrap server that was asked, not the system resolver that
// the Go resolver's message names, which was never asked.
func TestBootstrapFailureNamesTheBootstrapServer(t *testing.T) {
	for _, rcode := range []int{dns.RcodeNameError, dns.RcodeServerFailure} {
		t.Run(dns.RcodeToString[rcode], func(t *testing.T) {
			boot := startBootstrapServer(t, rcode)
			srv := dottest.Start(t, dottest.Options{})
			env := upstreamEnv(t, srv)
			_, port, _ := net.SplitHostPort(srv.Addr)
			env["DOTPROXY_UPSTREAMS"] = "dot.bootstrap.test:" + port + "#dns.test"
			env["DOTPROXY_BOOTSTRAP"] = boot.addr
			p := startProxy(t, env) // the warm connection's dial looks the name up
			l := p.awaitLog(t, "that the upstream cannot be reached", msgIs("cannot connect to upstream"))
			msg := fmt.Sprint(l["err"])
			if !strings.Contains(msg, "dot.bootstrap.test") || !strings.Contains(msg, "bootstrap "+boot.addr) {
				t.Fatalf("the error does not name the name and the bootstrap server %s: %s", boot.addr, msg)
			}
			for _, s := range systemResolvers(t) {
				if strings.Contains(msg, s) {
					t.Fatalf("the error names the system resolver %s, which was not asked: %s", s, msg)
				}
			}
			if len(boot.asked()) == 0 {
				t.Fatal("the bootstrap server was not asked")
			}
		})
	}
}
