#!/usr/bin/env bash
# bench/lib.sh: helpers shared by bench/compare.sh, soak.sh and sparse.sh.
# Sourced, not run, after e2e/lib.sh (process tracking and stopping,
# certificates, free ports). Everything here talks only to 127.0.0.1.

# The scripts' own DOTPROXY_* knobs are no settings of dotproxy's, which
# stops at a variable it does not know: they stay shell variables, out of
# the environment that the dotproxy under test inherits.
export -n DOTPROXY_BIN DOTPROXY_ENV DOTPROXY_BEFORE_BIN DOTPROXY_BEFORE_REV

# bench_log MSG...: a progress line on stderr, prefixed with BENCH_NAME.
bench_log() { printf '[%s] %s\n' "${BENCH_NAME:-bench}" "$*" >&2; }

# bench_install LOGFILE PKG...: apt-get installs those of PKG that are not
# installed, one at a time (one that is missing does not stop the rest),
# unless INSTALL=0. Needs root when something is missing.
bench_install() {
	local logf=$1 p missing=()
	shift
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	[ "${INSTALL:-1}" = 1 ] || return 0
	bench_log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >>"$logf" 2>&1 || true
	for p in "${missing[@]}"; do
		apt-get install -y -q --no-install-recommends "$p" >>"$logf" 2>&1 ||
			bench_log "could not install $p"
	done
}

HZ=$(getconf CLK_TCK)

rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

# proc_tree PID: PID and all its descendants, one a line (forwarders that
# fork workers are measured as a whole).
proc_tree() {
	ps -e -o pid= -o ppid= 2>/dev/null | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1 }
		END { q[1] = root; n = 1
			for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], k, " ")
				for (j = 1; j <= m; j++) q[++n] = k[j] } }'
}

# cpu_ticks PID: user+system CPU time so far (clock ticks, all threads) of
# PID and its descendants, from /proc/PID/stat fields 14 and 15; counted
# after the last ")" so that a command name with spaces cannot shift them.
cpu_ticks() {
	local p s t=0 f
	for p in $(proc_tree "$1"); do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		s=${s##*) }
		read -ra f <<<"$s"
		# f[0] is field 3 (state): utime is field 14, stime field 15.
		t=$((t + f[11] + f[12]))
	done
	echo "$t"
}

# cpu_per_1k TICKS QUERIES: CPU seconds per 1,000 queries, or "-".
cpu_per_1k() {
	awk -v d="$1" -v n="$2" -v hz="$HZ" 'BEGIN{ if (n > 0) printf "%.3f", d/hz/n*1000; else print "-" }'
}

# bench_rev: the work tree's commit, "+dirty" when files other than bench/
# and docs/ differ from it (others' uncommitted work is in the build).
bench_rev() {
	local root=$1 rev
	rev=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
	if [ -n "$(cd "$root" && git status --porcelain --untracked-files=no -- . ':!bench' ':!docs' 2>/dev/null)" ]; then
		rev+="+dirty"
	fi
	echo "$rev"
}

# bench_dotproxy ROOT OUT: puts the binary under test at OUT: DOTPROXY_BIN
# if set, else a build of the work tree ROOT. Sets BENCH_DP_REV.
# shellcheck disable=SC2034 # BENCH_DP_REV is for the caller
bench_dotproxy() {
	local root=$1 out=$2
	if [ -n "${DOTPROXY_BIN:-}" ]; then
		cp "$DOTPROXY_BIN" "$out"
		BENCH_DP_REV="DOTPROXY_BIN=$DOTPROXY_BIN"
	else
		(cd "$root" && CGO_ENABLED=0 go build -o "$out" .)
		BENCH_DP_REV=$(bench_rev "$root")
	fi
}

# bench_dnsdist_upstream DIR PORT PLAIN_PORT LOG [LUA...]: dnsdist as a DoT
# server on 127.0.0.1:PORT answering every name itself (SpoofAction,
# 192.0.2.1): no cache, no recursion, no traffic off the machine. PLAIN_PORT
# is the plain listener dnsdist always wants. Extra LUA lines go before the
# rule. Needs DIR/srv.pem and DIR/srv.key. Sets BENCH_UP_PID (tracked).
bench_dnsdist_upstream() {
	local d=$1 port=$2 plain=$3 logf=$4
	shift 4
	{
		echo "setSecurityPollSuffix('')"
		echo "setLocal('127.0.0.1:$plain')"
		echo "addTLSLocal('127.0.0.1:$port', '$d/srv.pem', '$d/srv.key', {provider='openssl'})"
		printf '%s\n' "$@"
		echo "addAction(AllRule(), SpoofAction({'192.0.2.1'}))"
	} >"$d/upstream.conf"
	dnsdist --supervised --disable-syslog -C "$d/upstream.conf" >"$logf" 2>&1 &
	BENCH_UP_PID=$!
	e2e_track "$BENCH_UP_PID"
}

# bench_ready MODE PORT QFILE: waits up to 10 s until dnsperf gets one
# answer over MODE (udp, tcp, dot) from 127.0.0.1:PORT.
bench_ready() {
	local mode=$1 port=$2 qf=$3 i
	for ((i = 0; i < 50; i++)); do
		if dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$qf" -n 1 -t 1 2>/dev/null |
			grep -Eq 'Queries completed: +1 '; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# bench_conns PORT: established TCP connections to 127.0.0.1:PORT (the
# upstream) right now.
bench_conns() { ss -Htn state established dport = :"$1" 2>/dev/null | wc -l; }
