// Command dotproxy forwards plain DNS from a private network to DNS-over-TLS
// resolvers. It is configured only through DOTPROXY_* environment variables;
// run it with -h to list them.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"text/template"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/emit"
	"github.com/kelseyhightower/envconfig"
	"github.com/lmittmann/tint"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes: 2 is a bad setting or flag, 1 a failure at run time.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("dotproxy", flag.ContinueOnError)
	flags.SetOutput(stderr)
	showVersion := flags.Bool("version", false, "print the version and exit")
	flags.Usage = func() { usage(stdout) }
	if err := flags.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "dotproxy", version)
		return exitOK
	}
	command := flags.Arg(0)
	if command != "" && command != "healthcheck" {
		fmt.Fprintf(stderr, "dotproxy: unknown command %q (the only one is healthcheck)\n", command)
		return exitUsage
	}

	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, "dotproxy:", err)
		return exitUsage
	}
	if command == "healthcheck" {
		if err := healthcheck(cfg); err != nil {
			fmt.Fprintln(stderr, "dotproxy: unhealthy:", err)
			return exitFailure
		}
		return exitOK
	}

	log := newLogger(cfg, stderr)
	ctx, hup, stop := handleSignals()
	defer stop()
	if err := serve(ctx, cfg, log, hup, nil); err != nil {
		log.Error("dotproxy stopped", tint.Err(err))
		return exitFailure
	}
	return exitOK
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `dotproxy %s forwards plain DNS (UDP and TCP) to DNS-over-TLS resolvers.

Usage:
  dotproxy               serve, configured by the environment below
  dotproxy healthcheck   query the local listener; exit 0 if it answers
  dotproxy -version      print the version

`, version)
	tmpl := template.Must(template.New("usage").Funcs(template.FuncMap{"kind": kindOf}).Parse(usageFormat))
	_ = envconfig.Usaget(envPrefix, &config{}, w, tmpl)
	fmt.Fprintln(w, "\nThe Datadog client also reads DD_AGENT_HOST, DD_DOGSTATSD_URL, DD_ENV, DD_SERVICE and DD_VERSION.")
}

const usageFormat = `Environment:
{{range .}}  {{.Key}}  ({{kind .Field}}{{with .Tags.Get "default"}}, default {{.}}{{end}})
      {{.Tags.Get "desc"}}
{{end}}`

// kindOf names a setting's type for -h.
func kindOf(v reflect.Value) string {
	switch v.Interface().(type) {
	case upstreamList:
		return "list of host[:port][#tls-name]"
	case listenList:
		return "list of host:port"
	case prefixList:
		return "list of CIDR"
	case pinList:
		return "list of base64 SHA-256"
	case []string:
		return "list of string"
	case time.Duration:
		return "duration, e.g. 1500ms, 4s"
	case bool:
		return "true or false"
	case int:
		return "integer"
	case logLevel, logFormat, dnsmsg.Padding, balance.Policy, emit.Format:
		return "name"
	}
	return v.Kind().String()
}

// newLogger logs through tint's text handler on a terminal and as JSON
// elsewhere, unless DOTPROXY_LOG_FORMAT says otherwise.
func newLogger(cfg *config, w io.Writer) *slog.Logger {
	level := cfg.Log.Level.slog()
	format := cfg.Log.Format
	if format == formatAuto {
		format = formatJSON
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = formatText
		}
	}
	if format == formatJSON {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	color := cfg.Log.Format == formatAuto // a terminal; an explicit "text" may be a file
	return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, NoColor: !color, TimeFormat: time.RFC3339}))
}

// signalName names the two signals that stop dotproxy as a log reader
// knows them, on every platform.
func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// handleSignals returns a context cancelled by SIGINT or SIGTERM, whose
// cause names the signal, so that the log says why dotproxy stopped (docker
// stop, a Ctrl-C, an orchestrator's drain), and a channel that receives
// each SIGHUP, which would otherwise end the process with no word in the
// log. SIGHUPs that come while one is handled count as one. Every other
// signal keeps Go's default: SIGQUIT dumps the goroutines and exits.
func handleSignals() (context.Context, <-chan os.Signal, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("received %s", signalName(s)))
		case <-done:
		}
	}()
	return ctx, hup, func() {
		signal.Stop(sigs)
		signal.Stop(hup)
		close(done)
		cancel(nil)
	}
}
