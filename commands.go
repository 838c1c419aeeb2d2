package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit codes: 2 is a bad setting or flag, 1 a failure at run time.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// A command other than serving runs with the settings loaded, and returns
// the exit code.
type command func(cfg *config, stdout, stderr io.Writer) int

// parseCommand reads the command and its flags after dotproxy's own; a nil
// command means serve. When ok is false, the usage was wrong and code is
// the exit code, the reason already written to stderr.
func parseCommand(args []string, stderr io.Writer) (cmd command, code int, ok bool) {
	if len(args) == 0 {
		return nil, exitOK, true
	}
	name, rest := args[0], args[1:]
	flags := flag.NewFlagSet("dotproxy "+name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	switch name {
	case "healthcheck":
		ready := flags.Bool("ready", false, "check readiness, not liveness: exit 1 while every upstream of the default route is down, or while stopping")
		if code, ok := parseFlags(flags, rest); !ok {
			return nil, code, false
		}
		cmd = func(cfg *config, _, stderr io.Writer) int {
			if *ready {
				return exitWith(stderr, "not ready", readycheck(cfg))
			}
			return exitWith(stderr, "unhealthy", healthcheck(cfg))
		}
	case "status":
		if code, ok := parseFlags(flags, rest); !ok {
			return nil, code, false
		}
		cmd = func(cfg *config, stdout, stderr io.Writer) int {
			return exitWith(stderr, "no status", statusCommand(cfg, stdout))
		}
	default:
		fmt.Fprintf(stderr, "dotproxy: unknown command %q (the commands are healthcheck and status)\n", name)
		return nil, exitUsage, false
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "dotproxy %s: unexpected argument %q\n", name, flags.Arg(0))
		return nil, exitUsage, false
	}
	return cmd, exitOK, true
}

// parseFlags parses a command's flags; -h has printed them, and exits 0.
func parseFlags(flags *flag.FlagSet, args []string) (code int, ok bool) {
	switch err := flags.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, false
	case err != nil:
		return exitUsage, false
	}
	return exitOK, true
}

// exitWith writes err, if any, as one line on stderr after what, and
// returns the exit code.
func exitWith(stderr io.Writer, what string, err error) int {
	if err != nil {
		fmt.Fprintf(stderr, "dotproxy: %s: %v\n", what, err)
		return exitFailure
	}
	return exitOK
}
