// Command check reads a rendering of the dotproxy Helm chart (helm template
// output), decodes every object strictly into its k8s.io/api type, as the
// API server's strict field validation would, and checks the rules that
// keep dotproxy serving: the restricted Pod Security profile, probes that
// run the right health check, a grace period longer than the drain, UDP and
// TCP 53 on the Service, host network and a loop-free DNS policy for the
// DaemonSet.
//
//	helm template x deploy/helm/dotproxy | go run . -mode deployment
//	helm template x deploy/helm/dotproxy --set mode=daemonset | go run . -mode daemonset
//
// It lives in a module of its own so that dotproxy's module gains no
// Kubernetes dependency. No cluster is involved: what an admission
// controller or the API server's value validation would say is not checked.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var md mode
	fs.StringVar(&md.name, "mode", "deployment", "what the chart was rendered as: deployment or daemonset")
	fs.BoolVar(&md.autoscaling, "autoscaling", false, "a HorizontalPodAutoscaler is expected (deployment mode)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	in := stdin
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "check: one file at most (default: standard input)")
		return 2
	}
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, "check:", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	m, err := readManifest(in)
	if err != nil {
		fmt.Fprintln(stderr, "check: strict decoding failed:")
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintln(stderr, "  "+line)
		}
		return 1
	}
	if errs := check(m, md); len(errs) > 0 {
		fmt.Fprintf(stderr, "check: %d rule(s) broken:\n", len(errs))
		for _, e := range errs {
			fmt.Fprintln(stderr, "  "+e.Error())
		}
		return 1
	}
	fmt.Fprintf(stdout, "check: %s: %d objects decoded strictly (%s), every rule holds\n",
		md.name, len(m.kinds), strings.Join(m.kinds, ", "))
	return 0
}
