#!/usr/bin/env bash
# bench/soak.sh: dotproxy under a steady RATE for SOAK seconds; does its
# memory stay small and flat, and its upstream connections few?
#
#   upstream  dnsdist on 127.0.0.1, DoT only, answering every name itself
#             (the same upstream as bench/compare.sh)
#   dotproxy  defaults (DOTPROXY_ENV adds settings), in front of it
#   load      dnsperf over UDP, -Q RATE -l SOAK, unique names (RATE x SOAK
#             of them, so none repeats: no cache anywhere helps)
#
# Every second the established TCP connections to the upstream's port are
# counted (ss); every INTERVAL s a row goes to soak.csv: seconds since the
# load started, VmRSS and VmHWM (kB, /proc/PID/status), the connections
# now and the most seen since the last row, dotproxy's CPU ticks so far.
# Row 0 is before the load (idle after one query). soak.png plots RSS over
# time, with the 25 MiB target, min/max RSS and the most connections in the
# title (gnuplot, Debian's gnuplot-nox).
#
# Verdicts printed at the end (issue 9's targets):
#   RSS <= 25 MiB       the highest VmRSS sampled under load, and VmHWM
#   flat                mean RSS of the last FLAT_WINDOW s against the mean
#                       of the second FLAT_WINDOW s (60-120 s: after start-up
#                       and warm-up), within 10 %
#   connections <= 4    the most seen in any 1 s sample
#
# Usage: bench/soak.sh                 (10 min of load; ~11 min in all)
# Knobs: SOAK=600 (s), RATE=5000 (qps), INTERVAL=5 (s), FLAT_WINDOW=60 (s;
#   scaled down to SOAK/5 for short runs), OUTSTANDING=500 (dnsperf -q),
#   DOTPROXY_BIN=path (else the work tree is built), DOTPROXY_ENV="K=V ...",
#   OUT=dir, INSTALL=1. Traffic only to 127.0.0.1; dnsperf is bounded by -l;
#   everything started is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
export E2E_ROOT=$repo
# shellcheck source=e2e/lib.sh
. "$repo/e2e/lib.sh"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
BENCH_NAME=soak

SOAK=${SOAK:-600}
RATE=${RATE:-5000}
INTERVAL=${INTERVAL:-5}
FLAT_WINDOW=${FLAT_WINDOW:-60}
OUTSTANDING=${OUTSTANDING:-500}
RSS_MAX_MIB=${RSS_MAX_MIB:-25}
CONNS_MAX=${CONNS_MAX:-4}
DOTPROXY_ENV=${DOTPROXY_ENV:-}
OUT=${OUT:-$(mktemp -d /tmp/dotproxy-soak.XXXXXX)}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/dotproxy-soak-work.XXXXXX)

cleanup() {
	e2e_cleanup
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_install "$OUT/apt.log" dnsperf dnsdist openssl iproute2 gnuplot-nox
e2e_require soak.sh dnsperf dnsdist openssl ss gnuplot

if ((SOAK < 3 * FLAT_WINDOW)); then
	FLAT_WINDOW=$((SOAK / 5 > 0 ? SOAK / 5 : 1))
	bench_log "short run: comparing windows of ${FLAT_WINDOW} s"
fi

e2e_certs "$W" >"$OUT/openssl.log" 2>&1
cp "$W/server.pem" "$W/srv.pem"
cp "$W/server.key" "$W/srv.key"
names=$((RATE * SOAK + RATE * 10))
awk -v n="$names" 'BEGIN{for(i=0;i<n;i++) printf "u%08d.bench.test A\n", i}' >"$W/q.txt"
echo "ready.bench.test A" >"$W/one.txt"
bench_dotproxy "$repo" "$W/dotproxy"

UP_PORT=$(e2e_free_port)
UP_PLAIN=$(e2e_free_port)
DP_PORT=$(e2e_free_port)
bench_dnsdist_upstream "$W" "$UP_PORT" "$UP_PLAIN" "$OUT/upstream.log"
bench_ready dot "$UP_PORT" "$W/one.txt" ||
	{ bench_log "upstream dnsdist did not start"; cat "$OUT/upstream.log" >&2; exit 1; }

read -ra extra <<<"$DOTPROXY_ENV"
env DOTPROXY_UPSTREAMS="127.0.0.1:$UP_PORT#dns.test" \
	DOTPROXY_TLS_CA_FILE="$W/ca.pem" \
	DOTPROXY_LISTEN="127.0.0.1:$DP_PORT" \
	DOTPROXY_LOG_LEVEL=warn \
	"${extra[@]}" "$W/dotproxy" >"$OUT/dotproxy.log" 2>&1 &
dp=$!
e2e_track "$dp"
bench_ready udp "$DP_PORT" "$W/one.txt" ||
	{ bench_log "dotproxy did not answer"; cat "$OUT/dotproxy.log" >&2; exit 1; }
bench_log "dotproxy ($BENCH_DP_REV) pid $dp; ${RATE} qps for ${SOAK} s, a row every ${INTERVAL} s"

csv=$OUT/soak.csv
echo "t_s,rss_kb,hwm_kb,conns,conns_max,cpu_ticks" >"$csv"
echo "0,$(rss_kb "$dp"),$(hwm_kb "$dp"),$(bench_conns "$UP_PORT"),$(bench_conns "$UP_PORT"),$(cpu_ticks "$dp")" >>"$csv"

dnsperf -s 127.0.0.1 -p "$DP_PORT" -d "$W/q.txt" -l "$SOAK" -Q "$RATE" -q "$OUTSTANDING" \
	-c 1 -t 2 >"$OUT/dnsperf.txt" 2>&1 &
perf_pid=$!
e2e_track "$perf_pid"
t0=$SECONDS
maxc=0
allmax=0
deadline=$((t0 + SOAK + 30))
next=$((t0 + INTERVAL))
while kill -0 "$perf_pid" 2>/dev/null && ((SECONDS < deadline)); do
	sleep 1
	c=$(bench_conns "$UP_PORT")
	((c > maxc)) && maxc=$c
	((c > allmax)) && allmax=$c
	if ((SECONDS >= next)); then
		echo "$((SECONDS - t0)),$(rss_kb "$dp"),$(hwm_kb "$dp"),$c,$maxc,$(cpu_ticks "$dp")" >>"$csv"
		next=$((next + INTERVAL))
		maxc=0
	fi
	if ! kill -0 "$dp" 2>/dev/null; then
		bench_log "dotproxy exited during the soak"
		break
	fi
done
wait "$perf_pid" 2>/dev/null || true
hwm=$(hwm_kb "$dp")
e2e_stop "$dp"

# ---------------------------------------------------------------- report
sent=$(awk '/Queries sent/{print $3}' "$OUT/dnsperf.txt")
done_q=$(awk '/Queries completed/{print $3}' "$OUT/dnsperf.txt")
lost=$(awk '/Queries lost/{print $3, $4}' "$OUT/dnsperf.txt")
avg=$(awk '/Average Latency/{print $4}' "$OUT/dnsperf.txt")
rev=$BENCH_DP_REV
awk -F, -v soak="$SOAK" -v w="$FLAT_WINDOW" -v hwm="$hwm" -v allmax="$allmax" -v hz="$HZ" \
	-v done_q="${done_q:-0}" -v rssmax="$RSS_MAX_MIB" -v cmax="$CONNS_MAX" -v out="$W/stats" '
NR == 1 { next }
$1 == 0 { idle = $2; c0 = $6; next }
{
	n++; r = $2 / 1024
	if (n == 1 || r > mx) mx = r
	if (n == 1 || r < mn) mn = r
	if ($1 >= w && $1 < 2 * w) { s2 += r; n2++ }
	if ($1 > soak - w) { sl += r; nl++ }
	c1 = $6
}
END {
	if (n == 0) { print "no samples under load"; exit 1 }
	m2 = (n2 ? s2 / n2 : 0); ml = (nl ? sl / nl : 0)
	d = (m2 > 0 ? 100 * (ml - m2) / m2 : 0)
	printf "RSS under load: min %.1f MiB, max %.1f MiB (idle %.1f MiB; VmHWM %.1f MiB)\n", mn, mx, idle / 1024, hwm / 1024
	printf "RSS mean, %d-%d s: %.2f MiB; last %d s: %.2f MiB; change %+.1f %%\n", w, 2 * w, m2, w, ml, d
	printf "upstream connections: at most %d\n", allmax
	if (done_q > 0) printf "dotproxy CPU: %.3f s per 1k queries (row 0 to the last row)\n", (c1 - c0) / hz / done_q * 1000
	printf "RSS <= %d MiB: %s (max sampled %.1f, VmHWM %.1f)\n", rssmax, (mx <= rssmax && hwm / 1024 <= rssmax ? "yes" : "NO"), mx, hwm / 1024
	printf "RSS flat (within 10 %%): %s\n", ((d <= 10 && d >= -10 && n2 && nl) ? "yes" : "NO")
	printf "connections <= %d: %s\n", cmax, (allmax <= cmax ? "yes" : "NO")
	printf "%.1f %.1f\n", mn, mx > out
}' "$csv" >"$OUT/summary.txt"
read -r rmin rmax <"$W/stats"
{
	echo "dnsperf: sent ${sent:-?}, completed ${done_q:-?}, lost ${lost:-?}, average latency ${avg:-?} s"
	echo "dotproxy $rev; RATE=$RATE qps for SOAK=${SOAK}s; $(date -u +%FT%TZ); $(nproc) CPUs"
} >>"$OUT/summary.txt"

gnuplot <<EOF
set terminal pngcairo size 720,400 font ",10" noenhanced
set output "$OUT/soak.png"
set datafile separator ","
set datafile columnheaders
set title "dotproxy ${rev##*/}, ${RATE} qps for ${SOAK} s, $(date -u +%F)\\nRSS min ${rmin} / max ${rmax} MiB; at most ${allmax} upstream connections"
set xlabel "seconds under load"
set ylabel "MiB"
set yrange [0:$((RSS_MAX_MIB + 5))]
set key bottom right
set grid
plot "$csv" every ::1 using 1:(\$2/1024) with linespoints pt 7 ps 0.4 title "VmRSS", \
     ${RSS_MAX_MIB} with lines dt 2 lc rgb "red" title "target ${RSS_MAX_MIB} MiB"
EOF
cat "$OUT/summary.txt"
bench_log "CSV $csv, plot $OUT/soak.png"
