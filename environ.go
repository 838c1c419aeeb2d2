package main

import (
	"runtime"
	"slices"
	"strings"
)

// unknownSetting is a DOTPROXY_* variable that dotproxy does not read, and
// the known one it is closest to, if any is close.
type unknownSetting struct {
	name, near string
}

// unknownSettingsError stops start-up: a mistyped variable would otherwise
// be ignored, and dotproxy would run on a default the user meant to change
// (forwarding every query to the default resolvers, say).
type unknownSettingsError []unknownSetting

func (e unknownSettingsError) Error() string {
	if len(e) == 1 {
		u := e[0]
		if u.near == "" {
			return u.name + ": unknown setting (dotproxy -h lists every one)"
		}
		return u.name + ": unknown setting; did you mean " + u.near + "?"
	}
	parts := make([]string, len(e))
	for i, u := range e {
		parts[i] = u.name
		if u.near != "" {
			parts[i] += " (did you mean " + u.near + "?)"
		}
	}
	return "unknown settings: " + strings.Join(parts, ", ")
}

// checkEnviron returns an unknownSettingsError naming every variable of
// environ (as os.Environ gives it) that starts with DOTPROXY_, in any case,
// and is neither a setting, known or a route's (see routeVar), nor one
// that an orchestrator injects on its own (see injected).
func checkEnviron(environ, known []string) error {
	isKnown := make(map[string]bool, len(known))
	for _, k := range known {
		isKnown[k] = true
	}
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			vars[k] = v
		}
	}
	var bad unknownSettingsError
	for k, v := range vars {
		name := k
		if runtime.GOOS == "windows" {
			name = strings.ToUpper(k) // the names are not case-sensitive there
		}
		_, _, isRoute := routeVar(name)
		if !hasPrefixFold(k, envPrefix+"_") || isKnown[name] || isRoute || injected(k, v, vars) {
			continue
		}
		bad = append(bad, unknownSetting{name: k, near: nearest(k, append(slices.Clip(known), routeNear(k)...))})
	}
	if len(bad) == 0 {
		return nil
	}
	slices.SortFunc(bad, func(a, b unknownSetting) int { return strings.Compare(a.name, b.name) })
	return bad
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// nearest returns the known name closest to name by edit distance,
// ignoring case, if it is close enough to be what was meant: one edit in
// a short name, one more for every five characters after the prefix.
func nearest(name string, known []string) string {
	name = strings.ToUpper(name)
	limit := 1 + len(strings.TrimPrefix(name, envPrefix+"_"))/5
	best, bestDist := "", limit+1
	for _, k := range known {
		if d := editDistance(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// routeNear returns the route variables that name, a DOTPROXY_* variable
// that is no setting, may have been meant as, for checkEnviron's
// suggestion: with its last word, a mistyped key, replaced by the key
// (DOTPROXY_ROUTE_CORP_DOMIANS), or the first word after the prefix by
// ROUTE (DOTPROXY_ROUTES_CORP_DOMAINS). A last word far from every key is
// no key mistyped but a word of some other setting, and gets none.
func routeNear(name string) []string {
	upper := strings.ToUpper(name)
	var near []string
	if rest, ok := strings.CutPrefix(upper, routePrefix); ok {
		if i := strings.LastIndexByte(rest, '_'); i > 0 {
			route, word := rest[:i], rest[i+1:]
			for _, k := range routeKeys {
				if editDistance(word, k) <= len(k)/2 {
					near = append(near, routePrefix+route+"_"+k)
				}
			}
		}
	}
	_, after, _ := strings.Cut(strings.TrimPrefix(upper, envPrefix+"_"), "_")
	if route, _, ok := routeVar(routePrefix + after); ok && checkRouteName(route) == nil {
		near = append(near, routePrefix+after)
	}
	return near
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
