#!/usr/bin/env bash
# bench/sparse.sh: sparse traffic through dotproxy against an upstream that
# closes idle connections after 10 s. Does any query on the client path
# wait for a TCP connect and TLS handshake?
#
#   upstream   unbound (Debian) on 127.0.0.1: DoT on one port, plain DNS on
#              another, answering sparse.dns.test from local-data (no
#              recursion, nothing leaves the machine), tcp-idle-timeout:
#              10000. unbound applies that timeout to its TLS connections
#              too: the script measures it first (IDLE_CHECK=1), opening a
#              DoT connection, asking one query and timing the server's close.
#   dotproxy   defaults (its warm connection, idle timeout, ...), debug logs,
#              plain statsd metrics to a receiver of this script's own.
#   load       one query every PERIOD s for SPARSE s; each tick, in order:
#                (a) UDP through dotproxy: the client path under test
#                (b) UDP straight to unbound's plain port: the floor
#                (c) a fresh DoT connection to unbound: TCP connect, a full
#                    TLS 1.3 handshake (no session to resume), one query;
#                    connect + handshake is what a query would wait for
#              bench/dnsprobe.py times each inside one Python process
#              (perf_counter around the socket calls: no process start-up
#              in the figures).
#
# Why the verdict is sound. A query that waits for a handshake takes at
# least the part of that handshake still to come. Two independent checks:
#   1. latency: every (a) must be shorter than H, the shortest connect +
#      handshake seen on this machine in this run, both dotproxy's own (its
#      upstream.handshake timer, which covers connect and TLS handshake)
#      and (c)'s. A query that waited for a whole handshake cannot pass.
#   2. timing: dotproxy reports each handshake as it completes (a timer
#      sent within DOTPROXY_STATSD_FLUSH_INTERVAL=100ms). The receiver
#      stamps each line on arrival, so a handshake completed in
#      [arrival - 100 ms - SLACK, arrival]. A query during which any
#      handshake may have completed is flagged, which also catches a query
#      that waited for only the end of a handshake begun before it came,
#      and which check 1 could miss. This errs towards flagging: a flag
#      means "look", no flag means no handshake ended while it was waiting.
# Check 1 passing shows on its own that no query waited for a whole
# handshake. Failing it proves nothing (on a busy machine a plain UDP query
# can take milliseconds too: see (b)), so check 2 decides: a query that
# waits for a handshake is released by that handshake's completion, which
# dotproxy reports. PASS needs check 2 clean and every answer NOERROR; the
# summary says whether check 1 held too. A negative control shows that the
# checks see a wait: DOTPROXY_ENV=DOTPROXY_UPSTREAM_WARM_CONNS=0 (no warm
# connection) must FAIL. With so few samples (SPARSE/PERIOD, 25 by default)
# p50 is the median and p99 is reported as the max.
#
# Note: unbound 1.17 holds the first answer on a new DoT connection for a
# delayed ACK (~40 ms; its listener leaves Nagle on, and the answer queues
# behind its session tickets), so (c)'s query time is not a round trip: read
# (c)'s connect + handshake columns for what a handshake costs. It does not
# touch (a): dotproxy's warm connection was opened seconds before any query.
#
# Usage: bench/sparse.sh
# Knobs: SPARSE=300 (s), PERIOD=12 (s), IDLE_CHECK=1, UP_IDLE_MS=10000,
#   SLACK_MS=50, DOTPROXY_BIN=path (else the work tree is built),
#   DOTPROXY_ENV="K=V ..." (extra settings for dotproxy), OUT=dir, INSTALL=1.
# Traffic only to 127.0.0.1; every process started is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
export E2E_ROOT=$repo
# shellcheck source=e2e/lib.sh
. "$repo/e2e/lib.sh"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
BENCH_NAME=sparse

SPARSE=${SPARSE:-300}
PERIOD=${PERIOD:-12}
IDLE_CHECK=${IDLE_CHECK:-1}
UP_IDLE_MS=${UP_IDLE_MS:-10000}
SLACK_MS=${SLACK_MS:-50}
FLUSH_MS=100
DOTPROXY_ENV=${DOTPROXY_ENV:-}
OUT=${OUT:-$(mktemp -d /tmp/dotproxy-sparse.XXXXXX)}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/dotproxy-sparse-work.XXXXXX)
probe=$here/dnsprobe.py
NAME=sparse.dns.test

cleanup() {
	e2e_cleanup
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_install "$OUT/apt.log" unbound openssl python3 iproute2
e2e_require sparse.sh unbound unbound-checkconf openssl python3 ss

e2e_certs "$W" >"$OUT/openssl.log" 2>&1
bench_dotproxy "$repo" "$W/dotproxy"

TLS_PORT=$(e2e_free_port)
UDP_PORT=$(e2e_free_port)
DP_PORT=$(e2e_free_port)
STATSD_PORT=$(e2e_free_port)

cat >"$W/unbound.conf" <<EOF
server:
  username: ""
  chroot: ""
  directory: "$W"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  interface: 127.0.0.1@$TLS_PORT
  interface: 127.0.0.1@$UDP_PORT
  tls-port: $TLS_PORT
  port: $UDP_PORT
  tls-service-key: "$W/server.key"
  tls-service-pem: "$W/server.pem"
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  # The server closes a TCP or TLS connection that sends no query this long.
  tcp-idle-timeout: $UP_IDLE_MS
  # Everything answered locally; ". NS" for dotproxy's health probes.
  local-zone: "." static
  local-data: ". 86400 IN NS ns.dns.test."
  local-zone: "dns.test." static
  local-data: "$NAME. 300 IN A 192.0.2.1"
remote-control:
  control-enable: no
EOF
unbound-checkconf "$W/unbound.conf" >/dev/null
unbound -d -c "$W/unbound.conf" >"$OUT/unbound.log" 2>&1 &
e2e_track $!
for ((i = 0; i < 50; i++)); do
	python3 "$probe" udp 127.0.0.1 "$UDP_PORT" "$NAME" >/dev/null 2>&1 && break
	sleep 0.2
done
python3 "$probe" dot 127.0.0.1 "$TLS_PORT" "$NAME" "$W/ca.pem" dns.test >/dev/null ||
	{ bench_log "unbound does not answer over DoT"; cat "$OUT/unbound.log" >&2; exit 1; }
bench_log "unbound: DoT 127.0.0.1:$TLS_PORT, plain 127.0.0.1:$UDP_PORT, tcp-idle-timeout ${UP_IDLE_MS} ms"

idle=not-checked
if [ "$IDLE_CHECK" = 1 ]; then
	idle=$(python3 "$probe" idle 127.0.0.1 "$TLS_PORT" "$NAME" "$W/ca.pem" dns.test $((UP_IDLE_MS / 1000 + 10)) | awk '{print $2}')
	bench_log "unbound closed an idle DoT connection after ${idle} s"
fi

# The statsd receiver, for longer than the run; stopped by the trap anyway.
python3 "$probe" statsd "$STATSD_PORT" "$OUT/statsd.txt" $((SPARSE + 60)) &
e2e_track $!
for ((i = 0; i < 50; i++)); do
	[ -s "$OUT/statsd.txt" ] && break
	sleep 0.1
done

read -ra extra <<<"$DOTPROXY_ENV"
env DOTPROXY_UPSTREAMS="127.0.0.1:$TLS_PORT#dns.test" \
	DOTPROXY_TLS_CA_FILE="$W/ca.pem" \
	DOTPROXY_LISTEN="127.0.0.1:$DP_PORT" \
	DOTPROXY_LOG_LEVEL=debug DOTPROXY_LOG_FORMAT=text \
	DOTPROXY_STATSD_ADDR="127.0.0.1:$STATSD_PORT" DOTPROXY_STATSD_FORMAT=statsd \
	DOTPROXY_STATSD_FLUSH_INTERVAL=${FLUSH_MS}ms \
	"${extra[@]}" "$W/dotproxy" >"$OUT/dotproxy.log" 2>&1 &
dp_pid=$!
e2e_track "$dp_pid"
ok=
for ((i = 0; i < 50; i++)); do
	if python3 "$probe" udp 127.0.0.1 "$DP_PORT" "$NAME" >/dev/null 2>&1; then ok=1; break; fi
	sleep 0.2
done
[ -n "$ok" ] || { bench_log "dotproxy did not answer"; tail "$OUT/dotproxy.log" >&2; exit 1; }
bench_log "dotproxy ($BENCH_DP_REV) on 127.0.0.1:$DP_PORT; one query every ${PERIOD} s for ${SPARSE} s"

# ---------------------------------------------------------------- the run
csv=$OUT/sparse.csv
echo "tick,sent_unix,answered_unix,via_dotproxy_ms,rcode,direct_udp_ms,direct_dot_connect_ms,direct_dot_handshake_ms,direct_dot_first_query_ms,direct_dot_total_ms" >"$csv"
n=$((SPARSE / PERIOD))
start=$SECONDS
for ((k = 1; k <= n; k++)); do
	# Each query comes PERIOD s after the last one (the readiness query for
	# the first), on the schedule, not after the previous tick's probes.
	sleep "$(awk -v t=$((start + k * PERIOD)) -v now="$SECONDS" 'BEGIN{d=t-now; print (d > 0 ? d : 0)}')"
	read -r _ a_ms a_rc a_t0 a_t1 <<<"$(python3 "$probe" udp 127.0.0.1 "$DP_PORT" "$NAME" || echo "udp nan error 0 0")"
	read -r _ b_ms _ <<<"$(python3 "$probe" udp 127.0.0.1 "$UDP_PORT" "$NAME" || echo "udp nan")"
	read -r _ c_con c_hs c_q c_tot _ <<<"$(python3 "$probe" dot 127.0.0.1 "$TLS_PORT" "$NAME" "$W/ca.pem" dns.test || echo "dot nan nan nan nan")"
	echo "$k,$a_t0,$a_t1,$a_ms,$a_rc,$b_ms,$c_con,$c_hs,$c_q,$c_tot" >>"$csv"
	bench_log "  $k/$n: via dotproxy $a_ms ms ($a_rc); direct UDP $b_ms ms; fresh DoT connect $c_con + handshake $c_hs ms"
done
# Let the last handshake timer, if any, arrive; then stop dotproxy (before
# unbound, so that its connection's end is not counted as the server's).
sleep 0.5
e2e_stop "$dp_pid"

# ---------------------------------------------------------------- verdict
# dotproxy's handshakes: "PREFIX.upstream.handshake...:VALUE|ms" lines.
grep -E '^[0-9.]+ [^ ]*upstream\.handshake[^:]*:[0-9.]+\|ms' "$OUT/statsd.txt" |
	sed -E 's/^([0-9.]+) [^:]*:([0-9.]+)\|ms.*/\1 \2/' >"$W/hs.txt" || true
# Connections dotproxy closed, by reason: "...upstream.cx_close.UP.REASON:N|c".
reasons=$({ grep -E '^[0-9.]+ [^ ]*upstream\.cx_close\.[^:]*:[0-9]+\|c' "$OUT/statsd.txt" || true; } |
	sed -E 's/^[0-9.]+ [^:]*\.([a-z_]+):([0-9]+)\|c.*/\1 \2/' |
	awk '{n[$1] += $2} END{for (r in n) printf "%s%s x%d", (k++ ? ", " : ""), r, n[r]}')

awk -F, -v hsf="$W/hs.txt" -v flush="$FLUSH_MS" -v slack="$SLACK_MS" -v out="$OUT/verdict.txt" '
function med(a, n,   i, j, t) {  # median of a[1..n] (sorts a)
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
	return (n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2)
}
function mx(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
BEGIN {
	nh = 0; hmin = 1e9
	while ((getline line < hsf) > 0) { split(line, f, " "); nh++; ht[nh] = f[1]; hv[nh] = f[2]; if (f[2] + 0 < hmin) hmin = f[2] + 0 }
	dpmin = hmin
}
NR == 1 { next }
{
	q++; a[q] = $4; b[q] = $6; con[q] = $7; hs[q] = $8; fq[q] = $9; tot[q] = $10
	ch = $7 + $8; if ($7 != "nan" && ch < hmin) hmin = ch
	t0[q] = $2; t1[q] = $3; rc[q] = $5
}
END {
	if (q == 0) { print "no samples"; exit 1 }
	for (i = 1; i <= q; i++) { A[i] = a[i]; B[i] = b[i]; C[i] = con[i] + hs[i]; D[i] = tot[i] }
	slow = 0; near = 0; bad = 0; list = ""
	for (i = 1; i <= q; i++) {
		if (rc[i] != "NOERROR") bad++
		if (a[i] == "nan" || a[i] + 0 >= hmin) { slow++; list = list " " i "(" a[i] " ms)" }
		for (j = 1; j <= nh; j++) {
			# handshake completed in [arrival - flush - slack, arrival]
			lo = ht[j] - (flush + slack) / 1000; hi = ht[j]
			if (hi >= t0[i] && lo <= t1[i]) { near++; list = list " " i "(handshake " hv[j] " ms completed during it)"; break }
		}
		for (j = 1; j <= nh; j++) { g = t0[i] - ht[j]; if (g < 0) g = -g; if (gap == "" || g < gap) gap = g }
	}
	printf "queries: %d, every one NOERROR: %s\n", q, (bad ? "no (" bad " not)" : "yes")
	printf "%-44s %10s %10s\n", "ms", "median", "max"
	printf "%-44s %10.3f %10.3f\n", "(a) UDP through dotproxy", med(A, q), mx(A, q)
	printf "%-44s %10.3f %10.3f\n", "(b) UDP direct to the upstream", med(B, q), mx(B, q)
	printf "%-44s %10.3f %10.3f\n", "(c) fresh DoT: connect + handshake", med(C, q), mx(C, q)
	printf "%-44s %10.3f %10.3f\n", "(c) fresh DoT: connect, handshake, 1st query", med(D, q), mx(D, q)
	printf "added by dotproxy over direct UDP, median: %+.3f ms\n", med(A, q) - med(B, q)
	if (nh) printf "dotproxy handshakes: %d (shortest %.3f ms)\n", nh, dpmin; else print "dotproxy handshakes: none reported"
	if (nh) printf "closest a handshake came to a query: %.1f s\n", gap
	printf "H, the shortest connect + handshake seen: %.3f ms\n", hmin
	printf "check 1, queries through dotproxy >= H: %d\n", slow
	printf "check 2, queries during which a handshake may have completed: %d\n", near
	if (list != "") printf "flagged:%s\n", list
	if (bad) v = "FAIL: not every query was answered NOERROR"
	else if (near) v = "FAIL: a handshake completed while a query was waiting (see flagged)"
	else if (slow) v = "PASS (check 2): no handshake completed while a query was waiting; " slow " slower than H for another reason (machine load? compare (b))"
	else v = "PASS (both checks): no query on the client path waited for a handshake"
	print v
	print v > out
}' "$csv" | tee "$OUT/summary.txt"
{
	echo "upstream idle close measured: ${idle} s (tcp-idle-timeout ${UP_IDLE_MS} ms)"
	echo "dotproxy $BENCH_DP_REV; upstream connections it closed, by reason: ${reasons:-none}"
	echo "SPARSE=${SPARSE}s PERIOD=${PERIOD}s; $(date -u +%FT%TZ); unbound $(unbound -V | awk 'NR==1{print $2}')"
} | tee -a "$OUT/summary.txt"
bench_log "CSV $csv, dotproxy log $OUT/dotproxy.log, metrics $OUT/statsd.txt"
grep -q '^PASS' "$OUT/verdict.txt"
