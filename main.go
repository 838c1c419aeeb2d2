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
	"syscall"

	"github.com/lmittmann/tint"
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
	command, code, ok := parseCommand(flags.Args(), stderr)
	if !ok {
		return code
	}

	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, "dotproxy:", err)
		return exitUsage
	}
	if command != nil {
		return command(cfg, stdout, stderr)
	}

	direct := newLogger(cfg.Log.Level, cfg.Log.Format, stderr).Handler()
	logs := newLogQueue()
	log := slog.New(logs.handler(direct))
	// The last lines leave before the exit, within its share of the stop
	// budget.
	defer logs.flush(direct, logFlushWait)
	ctx, hup, stop := handleSignals()
	defer stop()
	if err := serve(ctx, cfg, log, hup, nil); err != nil {
		log.Error("dotproxy stopped", tint.Err(err))
		return exitFailure
	}
	return exitOK
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
