#!/usr/bin/env bash
# bench/cpu.sh: CPU per query of forwarders, measured alone and in turn,
# with less around it than compare.sh: one fast DoT upstream (dnsdist on
# 127.0.0.1, answering every name itself), then for each target, one at a
# time and ROUNDS times over in alternation, so that the machine's drift hits
# each alike:
#
#   saturation  dnsperf -q 500 -c CLIENTS -l 10: qps, and the forwarder's CPU
#               seconds per 1,000 queries over the run
#   fixed rate  dnsperf -Q RATE -l 14; the forwarder's CPU per 1,000 queries
#               over 10 s in the middle, after the saturation run (as after
#               a burst, with the heap and connections it left)
#
# CPU is utime+stime of the process and its threads (/proc/PID/stat).
# Where perf can count tracepoints (Debian's linux-perf; PERF=0 turns it
# off), the fixed-rate window also counts, per query, the futex and
# nanosleep calls and the context switches of the process: the cost of
# waking Go's system monitor that docs/benchmarks.md ("The sysmon tax")
# describes, which a Go upgrade could bring back unnoticed.
# Targets:
#   dnsdist                    dnsdist 1.7 as a plain -> DoT forwarder, set up
#                              as in compare.sh (two TCP workers)
#   LABEL=PATH[,ENV=VAL...]    a dotproxy binary, with extra settings
#
# Usage: bench/cpu.sh dnsdist new=/tmp/dotproxy old=/tmp/dotproxy-old \
#          sockets2=/tmp/dotproxy,DOTPROXY_CLIENT_UDP_SOCKETS=2
# Knobs: ROUNDS=3 RATE=2000 CLIENTS=1 OUT=dir INSTALL=1
# Every load is bounded by -l; everything started here is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
export E2E_ROOT=$repo
# shellcheck source=e2e/lib.sh
. "$repo/e2e/lib.sh"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
BENCH_NAME=cpu

ROUNDS=${ROUNDS:-3}
RATE=${RATE:-2000}
CLIENTS=${CLIENTS:-1}
OUT=${OUT:-$(mktemp -d /tmp/dotproxy-cpu.XXXXXX)}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/dotproxy-cpu-work.XXXXXX)
(($# > 0)) || { bench_log "usage: bench/cpu.sh TARGET...  (dnsdist, or LABEL=PATH[,ENV=VAL...])"; exit 2; }

cleanup() {
	e2e_cleanup
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_install "$OUT/apt.log" dnsperf dnsdist openssl iproute2
PERF=${PERF:-1}
if [ "$PERF" = 1 ] && ! perf stat -e syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,context-switches true >/dev/null 2>&1; then
	bench_log "perf cannot count syscalls here: no futex/nanosleep columns"
	PERF=0
fi
for c in dnsperf dnsdist openssl ss; do
	command -v "$c" >/dev/null || { bench_log "$c is required"; exit 1; }
done

e2e_certs "$W" >"$OUT/openssl.log" 2>&1
cp "$W/server.pem" "$W/srv.pem"
cp "$W/server.key" "$W/srv.key"
awk 'BEGIN{for(i=0;i<1000000;i++) printf "u%07d.bench.test A\n", i}' >"$W/q.txt"
echo "ready.bench.test A" >"$W/one.txt"

up_port=$(e2e_free_port)
bench_dnsdist_upstream "$W" "$up_port" "$(e2e_free_port)" "$OUT/upstream.log"
bench_ready dot "$up_port" "$W/one.txt" || { bench_log "upstream did not start"; exit 1; }

# start TARGET PORT LOG: starts the target on 127.0.0.1:PORT, echoes its PID.
start() {
	local target=$1 port=$2 logf=$3 path
	if [ "$target" = dnsdist ]; then
		cat >"$W/fwd.conf" <<EOF
setSecurityPollSuffix('')
setLocal('127.0.0.1:$port')
setMaxTCPClientThreads(2)
newServer({address='127.0.0.1:$up_port', tls='openssl', subjectName='dns.test',
  caStore='$W/ca.pem', validateCertificates=true, maxInFlight=1000})
EOF
		dnsdist --supervised --disable-syslog -C "$W/fwd.conf" >"$logf" 2>&1 &
		echo $!
		return
	fi
	IFS=, read -ra parts <<<"${target#*=}"
	path=${parts[0]}
	env DOTPROXY_UPSTREAMS="127.0.0.1:$up_port#dns.test" DOTPROXY_TLS_CA_FILE="$W/ca.pem" \
		DOTPROXY_LISTEN="127.0.0.1:$port" DOTPROXY_LOG_LEVEL=warn "${parts[@]:1}" "$path" >"$logf" 2>&1 &
	echo $!
}

completed() { awk '/Queries completed/{print $3}' "$1"; }

# per_query FILE EVENT QUERIES: a perf counter from FILE (perf stat -x,), per query.
per_query() {
	awk -F, -v ev="$2" -v n="$3" '$3 == ev {printf "%.2f", $1 / n}' "$1"
}

printf '| round | target | saturation qps | CPU s/1k, saturation | CPU s/1k @%s | futex/q | nanosleep/q | cs/q |\n|--:|---|--:|--:|--:|--:|--:|--:|\n' "$RATE" >"$OUT/results.md"
for ((round = 1; round <= ROUNDS; round++)); do
	for target in "$@"; do
		label=${target%%=*}
		port=$(e2e_free_port)
		pid=$(start "$target" "$port" "$OUT/$label.log")
		e2e_track "$pid"
		bench_ready udp "$port" "$W/one.txt" || { bench_log "$label did not start"; exit 1; }

		t0=$(cpu_ticks "$pid")
		dnsperf -c "$CLIENTS" -q 500 -s 127.0.0.1 -p "$port" -d "$W/q.txt" -l 10 >"$OUT/$label.sat.$round.txt" 2>&1
		t1=$(cpu_ticks "$pid")
		sat_n=$(completed "$OUT/$label.sat.$round.txt")
		sat_qps=$(awk '/Queries per second/{printf "%d", $4}' "$OUT/$label.sat.$round.txt")

		dnsperf -Q "$RATE" -s 127.0.0.1 -p "$port" -d "$W/q.txt" -l 14 >"$OUT/$label.rate.$round.txt" 2>&1 &
		load=$!
		sleep 2
		r0=$(cpu_ticks "$pid")
		perf_out=$OUT/$label.perf.$round.txt
		if [ "$PERF" = 1 ]; then
			perf stat -x, -o "$perf_out" -e syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,context-switches \
				-p "$pid" -- sleep 10 >/dev/null 2>&1 || : >"$perf_out"
		else
			sleep 10
			: >"$perf_out"
		fi
		r1=$(cpu_ticks "$pid")
		wait "$load"
		n=$((RATE * 10))
		row="| $round | $label | $sat_qps | $(cpu_per_1k $((t1 - t0)) "$sat_n") | $(cpu_per_1k $((r1 - r0)) "$n")"
		row+=" | $(per_query "$perf_out" syscalls:sys_enter_futex "$n") | $(per_query "$perf_out" syscalls:sys_enter_nanosleep "$n")"
		row+=" | $(per_query "$perf_out" context-switches "$n") |"
		echo "$row" >>"$OUT/results.md"
		bench_log "$row"
		e2e_stop "$pid"
	done
done
bench_log "results in $OUT/results.md"
cat "$OUT/results.md"
