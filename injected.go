package main

import (
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// injected reports whether name=value is a variable that an orchestrator
// puts in a container's environment on its own, for a Service or a linked
// container whose name starts with "dotproxy" (upper-cased, '-' as '_',
// the alias below): Kubernetes service links, which every pod of the
// namespace gets, and Docker's legacy links (--link). Both name and value
// must have the shape the orchestrator gives them, so that a mistyped
// setting is still caught: DOTPROXY_PORT=udp://10.0.0.11:53 is a link,
// DOTPROXY_PORT=53 is not. vars is the whole environment, for the one link
// variable whose value can be anything (ALIAS_ENV_*, checked against its
// ALIAS_NAME).
func injected(name, value string, vars map[string]string) bool {
	if !strings.HasPrefix(name, envPrefix+"_") {
		return false // orchestrators upper-case the alias
	}
	// The alias is DOTPROXY and any words after it; try each split.
	for i := len(envPrefix); i < len(name); i++ {
		if name[i] == '_' && linkVar(name[:i], name[i+1:], value, vars) {
			return true
		}
	}
	return false
}

// linkVar reports whether alias_suffix=value is one of the variables of a
// Kubernetes service link or a Docker link named alias.
func linkVar(alias, suffix, value string, vars map[string]string) bool {
	switch suffix {
	case "SERVICE_HOST": // Kubernetes: the Service's cluster IP
		return isIP(value)
	case "SERVICE_PORT": // Kubernetes: its first port
		return isPort(value)
	case "PORT": // both: the first port as a URL
		_, _, ok := parseLinkURL(value)
		return ok
	case "NAME": // Docker: /container/alias
		return isLinkName(alias, value)
	}
	if port, ok := strings.CutPrefix(suffix, "SERVICE_PORT_"); ok {
		return isWord(port) && isPort(value) // Kubernetes: a named port
	}
	if v, ok := strings.CutPrefix(suffix, "ENV_"); ok {
		// Docker: the linked container's own variables, whatever their
		// names and values; only with the link's NAME beside them.
		return v != "" && isLinkName(alias, vars[alias+"_NAME"])
	}
	rest, ok := strings.CutPrefix(suffix, "PORT_")
	if !ok {
		return false
	}
	// PORT_<number>_<PROTO>[_<field>]
	num, rest, _ := strings.Cut(rest, "_")
	upper, field, _ := strings.Cut(rest, "_")
	proto := strings.ToLower(upper)
	if !isPort(num) || !isProto(proto) || upper != strings.ToUpper(proto) {
		return false
	}
	switch field {
	case "", "START": // both: proto://ip:port; Docker: the first of a range
		p, n, ok := parseLinkURL(value)
		return ok && p == proto && n == num
	case "END": // Docker: the last of a range
		p, n, ok := parseLinkURL(value)
		return ok && p == proto && atoi(n) > atoi(num)
	case "ADDR":
		return isIP(value)
	case "PORT", "PORT_START":
		return value == num
	case "PORT_END":
		return isPort(value) && atoi(value) > atoi(num)
	case "PROTO":
		return value == proto
	}
	return false
}

// parseLinkURL splits proto://ip:port, the shape of a link's address, into
// the protocol and the port.
func parseLinkURL(s string) (proto, port string, ok bool) {
	proto, hostport, ok := strings.Cut(s, "://")
	if !ok || !isProto(proto) {
		return "", "", false
	}
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil || ap.Port() == 0 {
		return "", "", false
	}
	return proto, strconv.Itoa(int(ap.Port())), true
}

// isLinkName reports whether value is the NAME of a Docker link called
// alias: /container/name, whose last part is the alias.
func isLinkName(alias, value string) bool {
	dir, base := path.Split(value)
	return strings.HasPrefix(dir, "/") && len(dir) > 1 && base != "" &&
		strings.ReplaceAll(strings.ToUpper(base), "-", "_") == alias
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// isPort reports whether s is a port number from 1 to 65535, written as
// orchestrators write it (no sign, no leading zero).
func isPort(s string) bool {
	n := atoi(s)
	return n >= 1 && n <= 65535 && strconv.Itoa(n) == s
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func isProto(s string) bool { return s == "tcp" || s == "udp" || s == "sctp" }

// isWord reports whether s is a non-empty run of upper-case letters,
// digits and '_', as orchestrators make variable names.
func isWord(s string) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}
