#!/usr/bin/env bash
# bench/compare.sh: side-by-side load comparison of dotproxy and other
# plain-DNS -> DNS-over-TLS forwarders, all in front of one fast DoT upstream.
#
#   upstream   dnsdist on 127.0.0.1, DoT only, answers every name itself
#              (SpoofAction): no cache, no recursion, no traffic off the box
#   baseline   dnsperf -m dot straight to that upstream
#   targets    dnsperf over UDP to each proxy, which forwards over DoT:
#              dotproxy (defaults, then a few settings), dnsdist, unbound,
#              Knot Resolver (kresd), stubby, whichever are installed
#   TCP pass   then the same targets again with dnsperf over TCP (-m tcp),
#              each started afresh and with paired baselines of its own
#              (see below; CLIENT_TRANSPORTS chooses the passes)
#
# For each target, one at a time, never two at once:
#   - maximum throughput: dnsperf with many queries outstanding, -l DURATION,
#     best of ROUNDS runs, as a ratio to a baseline run made right before it
#     (paired, as for latency below: other tenants of a shared machine come
#     and go, and a ratio to a baseline taken minutes earlier would show it)
#   - latency at a fixed RATE (dnsperf -Q RATE -v): median and p99 from the
#     per-query lines, and the median added over the baseline's, the baseline
#     being measured again right before each target's latency run (paired),
#     so that load from elsewhere on the machine hits both alike
#   - upstream TCP connections at peak (ss, sampled during the throughput run)
#   - RSS of the proxy: idle after start, after a warm-up, at the end, and its
#     high-water mark
#   - CPU seconds per 1,000 queries of the forwarder, at saturation (the
#     throughput run) and at RATE (the latency run): utime+stime of all its
#     threads and child processes (/proc/PID/stat) read right before and
#     right after the dnsperf run, over the queries dnsperf completed, x1000
#   - added p50 and p99: the forwarder's minus its paired baseline's
#   - QPS / dnsdist: its qps over the forwarder dnsdist's in the same run,
#     and (in brackets) the same with each first divided by its own paired
#     baseline, which takes out the machine's drift between the two
#
# The TCP-clients pass measures the same figures, in a table of its own
# ("TCP clients"), with these differences:
#   - dnsperf -m tcp -c TCP_CLIENTS -q TCP_OUTSTANDING: several long-lived
#     client connections (a resolver's stub clients, or a downstream cache,
#     hold a few and pipeline on them), no reconnects during a run (dnsperf's
#     num-queries-per-conn is left unlimited), so the figures are of query
#     handling on open connections, not of accept() and handshakes. The
#     default 8 x 50 outstanding stays under the per-connection limits of
#     both dotproxy (DOTPROXY_CLIENT_TCP_MAX_INFLIGHT, 64) and dnsdist
#     (maxInFlight=64 on its listener, see start_dnsdist; without it dnsdist
#     takes a connection's queries one at a time): what is measured is how
#     each works through pipelined queries, not where it stops reading.
#   - the latency run also uses TCP_CLIENTS connections, at the same RATE
#   - the paired baselines (DoT straight to the upstream) use TCP_CLIENTS
#     TLS connections too, so that the target's run and its baseline's differ
#     only by the forwarder in between
#   - dotproxy's SWEEP variants are not repeated (dotproxy runs with
#     defaults; dotproxy-before likewise)
#
# Every query name is unique (uNNNNNNN.bench.test, NAMES of them), so no cache
# helps. Traffic goes only to 127.0.0.1 on high ports; every load run is
# bounded by -l. Every process started here is stopped on exit (trap).
#
# Usage: bench/compare.sh            (from anywhere; needs root for apt only)
# Knobs (environment):
#   DURATION=15      seconds of each max-throughput run
#   ROUNDS=1         max-throughput runs per target; the best is reported
#   LAT_DURATION=10  seconds of the fixed-rate latency run
#   RATE=2000        queries/s of the latency run
#   OUTSTANDING=500  dnsperf -q for the throughput runs (UDP pass)
#   BASE_OUTSTANDING=100  dnsperf -q for the DoT baseline, both passes (more
#                    only adds queueing in one TLS stream; docs/benchmarks.md)
#   CLIENTS=1        dnsperf -c of the UDP pass (sockets; for its DoT
#                    baselines, TLS connections)
#   CLIENT_TRANSPORTS="udp tcp"  client-side passes, in the order given: udp
#                    (dnsperf over UDP to each target, as above), tcp (the
#                    same over TCP, a "TCP clients" table of its own);
#                    CLIENT_TRANSPORTS=udp skips the TCP pass
#   TCP_CLIENTS=8    dnsperf -c of the TCP pass (client TCP connections, and
#                    the TLS connections of its paired baselines)
#   TCP_OUTSTANDING=400  dnsperf -q of the TCP pass's throughput runs, over
#                    all TCP_CLIENTS connections (50 each by default)
#   NAMES=1000000    unique query names generated
#   TARGETS="baseline dotproxy dnsdist unbound kresd stubby"  what to run
#   SWEEP="..."      dotproxy variants after the defaults, ';'-separated
#                    "label ENV=VAL ..." items; SWEEP= (empty) skips them
#   QUIET_WAIT=60    seconds to wait, before each run, for the machine's other
#                    load to drop under QUIET_BUSY% CPU (then run anyway)
#   QUIET_BUSY=25
#   INSTALL=1        apt-get install missing Debian packages (0: skip them)
#   OUT=dir          where logs and results.md go (default: a new /tmp dir)
#   DOTPROXY_BIN=path  use this binary instead of building the work tree
#   DOTPROXY_BEFORE_BIN=path  an older dotproxy, run as the target
#                    "dotproxy-before" exactly like "dotproxy" (defaults, no
#                    sweep), right after it unless TARGETS places it;
#                    DOTPROXY_BEFORE_REV=label names it in the report
#   RUNS=1           the whole series of TARGETS this many times in a row
#                    (one build, one upstream); results.md has every run's
#                    tables and a summary of issue 9's targets across runs
#                    (UDP), and of the TCP pass's dotproxy rows
#
# Three runs, old and new dotproxy against dnsdist, ~12 min on 2 cores with
# CLIENT_TRANSPORTS=udp, ~22 min with the TCP pass (the default):
#   RUNS=3 SWEEP= TARGETS="baseline dotproxy dotproxy-before dnsdist" \
#     DOTPROXY_BEFORE_BIN=/path/to/old/dotproxy bench/compare.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# The end-to-end helpers: process tracking and stopping, certificates.
export E2E_ROOT=$repo
# shellcheck source=e2e/lib.sh
. "$repo/e2e/lib.sh"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-1}
LAT_DURATION=${LAT_DURATION:-10}
RATE=${RATE:-2000}
OUTSTANDING=${OUTSTANDING:-500}
BASE_OUTSTANDING=${BASE_OUTSTANDING:-100}
CLIENTS=${CLIENTS:-1}
CLIENT_TRANSPORTS=${CLIENT_TRANSPORTS:-udp tcp}
TCP_CLIENTS=${TCP_CLIENTS:-8}
TCP_OUTSTANDING=${TCP_OUTSTANDING:-400}
passes=""
for ct in $CLIENT_TRANSPORTS; do
	case $ct in
	udp | tcp) [[ " $passes " == *" $ct "* ]] || passes+=" $ct" ;;
	*) echo "compare.sh: CLIENT_TRANSPORTS: \"$ct\" is neither udp nor tcp" >&2; exit 2 ;;
	esac
done
CLIENT_TRANSPORTS=${passes# } # each pass once: their files are named by transport
[ -n "$CLIENT_TRANSPORTS" ] || { echo "compare.sh: CLIENT_TRANSPORTS names no pass" >&2; exit 2; }
NAMES=${NAMES:-1000000}
TARGETS=${TARGETS:-baseline dotproxy dnsdist unbound kresd stubby}
SWEEP=${SWEEP-conns=1 DOTPROXY_UPSTREAM_MAX_CONNS=1;conns=2 DOTPROXY_UPSTREAM_MAX_CONNS=2;inflight=64 DOTPROXY_UPSTREAM_MAX_INFLIGHT=64;inflight=1024 DOTPROXY_UPSTREAM_MAX_INFLIGHT=1024;GOMAXPROCS=1 GOMAXPROCS=1}
QUIET_WAIT=${QUIET_WAIT:-60}
QUIET_BUSY=${QUIET_BUSY:-25}
INSTALL=${INSTALL:-1}
RUNS=${RUNS:-1}
DOTPROXY_BEFORE_BIN=${DOTPROXY_BEFORE_BIN:-}
DOTPROXY_BEFORE_REV=${DOTPROXY_BEFORE_REV:-${DOTPROXY_BEFORE_BIN:+$(basename "$DOTPROXY_BEFORE_BIN")}}
if [ -n "$DOTPROXY_BEFORE_BIN" ] && [[ " $TARGETS " != *" dotproxy-before "* ]]; then
	if [[ " $TARGETS " == *" dotproxy "* ]]; then
		TARGETS=$(sed -E 's/(^| )dotproxy( |$)/\1dotproxy dotproxy-before\2/' <<<"$TARGETS")
	else
		TARGETS+=" dotproxy-before"
	fi
fi
OUT=${OUT:-$(mktemp -d /tmp/dotproxy-bench.XXXXXX)}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/dotproxy-bench-work.XXXXXX)

# ---------------------------------------------------------------- processes

track() { e2e_track "$1"; }
stop() { e2e_stop "$1"; }
cleanup() {
	e2e_cleanup
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[bench] %s\n' "$*" >&2; }

# free_port: a TCP+UDP port in 20000-59999 that nothing listens on.
taken=""
free_port() {
	local used port i
	used=$(ss -Htanu 2>/dev/null | awk '{print $5}' | sed -E 's/.*:([0-9]+)$/\1/' | sort -u)
	for ((i = 0; i < 200; i++)); do
		port=$((20000 + RANDOM % 40000))
		if ! grep -qx "$port" <<<"$used$taken"; then
			taken+=$'\n'"$port"
			echo "$port"
			return 0
		fi
	done
	return 1
}

# cpu_busy SECONDS: percent of all CPU time that was not idle over SECONDS.
cpu_busy() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	sleep "$1"
	b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," ");
		t=y[1]-x[1]; i=y[2]-x[2]; printf "%d", (t > 0 ? 100*(t-i)/t : 0)}'
}

# quiet: wait up to QUIET_WAIT s for the box to be idle enough; prints the
# busy percent last seen (the other tenants' load just before the run).
quiet() {
	local busy waited=0
	busy=$(cpu_busy 1)
	while ((busy > QUIET_BUSY && waited < QUIET_WAIT)); do
		busy=$(cpu_busy 2)
		waited=$((waited + 2))
	done
	echo "$busy"
}

# cpu_ticks (PID and its children, all threads), cpu_per_1k, rss_kb,
# hwm_kb, mib: bench/lib.sh.

# ---------------------------------------------------------------- setup

need_pkgs=()
command -v dnsperf >/dev/null || need_pkgs+=(dnsperf)
command -v dnsdist >/dev/null || need_pkgs+=(dnsdist)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v ss >/dev/null || need_pkgs+=(iproute2)
for t in $TARGETS; do
	case $t in
	unbound) command -v unbound >/dev/null || need_pkgs+=(unbound) ;;
	kresd) command -v kresd >/dev/null || need_pkgs+=(knot-resolver) ;;
	stubby) command -v stubby >/dev/null || need_pkgs+=(stubby) ;;
	esac
done
if ((${#need_pkgs[@]})) && [ "$INSTALL" = 1 ]; then
	log "installing ${need_pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >"$OUT/apt.log" 2>&1 || true
	for p in "${need_pkgs[@]}"; do
		# One at a time, so that one that is missing does not stop the rest.
		apt-get install -y -q --no-install-recommends "$p" >>"$OUT/apt.log" 2>&1 ||
			log "could not install $p"
	done
fi
for c in dnsperf dnsdist openssl ss; do
	command -v "$c" >/dev/null || { log "$c is required"; exit 1; }
done

log "work dir $W, results in $OUT"

# Certificates: a CA, and a server cert for dns.test, 127.0.0.1 and ::1.
e2e_certs "$W" >"$OUT/openssl.log" 2>&1
cp "$W/server.pem" "$W/srv.pem"
cp "$W/server.key" "$W/srv.key"

# Unique names; one line for readiness probes.
awk -v n="$NAMES" 'BEGIN{for(i=0;i<n;i++) printf "u%07d.bench.test A\n", i}' >"$W/q.txt"
echo "ready.bench.test A" >"$W/one.txt"

bench_dotproxy "$repo" "$W/dotproxy"
dp_rev=$BENCH_DP_REV
if [ -n "$DOTPROXY_BEFORE_BIN" ]; then
	cp "$DOTPROXY_BEFORE_BIN" "$W/dotproxy-before"
fi

# ---------------------------------------------------------------- upstream

UP_PORT=$(free_port)
UP_PLAIN=$(free_port) # dnsdist always wants a plain listener; unused
bench_dnsdist_upstream "$W" "$UP_PORT" "$UP_PLAIN" "$OUT/upstream.log"
up_pid=$BENCH_UP_PID

# ready MODE PORT: wait up to 10 s until one query is answered.
ready() {
	local mode=$1 port=$2 i
	for ((i = 0; i < 50; i++)); do
		if dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$W/one.txt" -n 1 -t 1 2>/dev/null |
			grep -Eq 'Queries completed: +1 '; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}
ready dot "$UP_PORT" || { log "upstream dnsdist did not start"; cat "$OUT/upstream.log" >&2; exit 1; }
log "upstream dnsdist on 127.0.0.1:$UP_PORT (DoT)"

# ---------------------------------------------------------------- proxies

# start_TARGET PORT LOGFILE [ENV=VAL...]: starts it in the background and
# echoes its PID. Each forwards 127.0.0.1:PORT (UDP and TCP) to the upstream
# over DoT.

start_dotproxy() {
	local port=$1 logf=$2
	shift 2
	env DOTPROXY_UPSTREAMS="127.0.0.1:$UP_PORT#dns.test" \
		DOTPROXY_TLS_CA_FILE="$W/ca.pem" \
		DOTPROXY_LISTEN="127.0.0.1:$port" \
		DOTPROXY_LOG_LEVEL=warn \
		"$@" "$W/dotproxy" >"$logf" 2>&1 &
	echo $!
}

# The older binary (DOTPROXY_BEFORE_BIN), started exactly as the current one.
start_dotproxy_before() {
	local port=$1 logf=$2
	shift 2
	env DOTPROXY_UPSTREAMS="127.0.0.1:$UP_PORT#dns.test" \
		DOTPROXY_TLS_CA_FILE="$W/ca.pem" \
		DOTPROXY_LISTEN="127.0.0.1:$port" \
		DOTPROXY_LOG_LEVEL=warn \
		"$@" "$W/dotproxy-before" >"$logf" 2>&1 &
	echo $!
}

# dnsdist 1.7 as a plain -> DoT forwarder. UDP queries to a DoT backend are
# handed to its TCP workers, each holding its own backend connection: two
# workers, two upstream connections. maxInFlight on the listener lets it work
# on up to 64 pipelined queries of one client TCP connection at once (without
# it, one at a time); it does nothing to UDP.
start_dnsdist() {
	local port=$1 logf=$2
	cat >"$W/fwd-dnsdist.conf" <<EOF
setSecurityPollSuffix('')
setLocal('127.0.0.1:$port', {maxInFlight=64})
setMaxTCPClientThreads(2)
newServer({address='127.0.0.1:$UP_PORT', tls='openssl', subjectName='dns.test',
  caStore='$W/ca.pem', validateCertificates=true, maxInFlight=1000})
EOF
	dnsdist --supervised --disable-syslog -C "$W/fwd-dnsdist.conf" >"$logf" 2>&1 &
	echo $!
}

# unbound as a forwarder: forward-tls-upstream, caches as small as allowed,
# no validator (the answers are spoofed and unsigned), two threads.
start_unbound() {
	local port=$1 logf=$2
	cat >"$W/fwd-unbound.conf" <<EOF
server:
  interface: 127.0.0.1@$port
  port: $port
  do-ip6: no
  do-daemonize: no
  use-syslog: no
  logfile: ""
  chroot: ""
  username: ""
  pidfile: ""
  directory: "$W"
  verbosity: 0
  num-threads: 2
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  do-not-query-localhost: no
  qname-minimisation: no
  msg-cache-size: 0
  rrset-cache-size: 0
  key-cache-size: 0
  neg-cache-size: 0
  # unbound answers test. itself (RFC 6761) unless told not to.
  local-zone: "test." nodefault
  infra-cache-numhosts: 16
  num-queries-per-thread: 4096
  outgoing-range: 8192
  so-rcvbuf: 4m
  tls-cert-bundle: "$W/ca.pem"
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$UP_PORT#dns.test
  forward-tls-upstream: yes
EOF
	unbound -d -c "$W/fwd-unbound.conf" >"$logf" 2>&1 &
	echo $!
}

# Knot Resolver 5: policy.TLS_FORWARD, a small cache (names are unique anyway).
start_kresd() {
	local port=$1 logf=$2
	mkdir -p "$W/kresd"
	cat >"$W/kresd/config" <<EOF
net.listen('127.0.0.1', $port, { kind = 'dns' })
cache.size = 10 * MB
modules.unload('ta_update')
modules.unload('detect_time_jump')
trust_anchors.remove('.')
policy.add(policy.all(policy.TLS_FORWARD({
  { '127.0.0.1@$UP_PORT', hostname = 'dns.test', ca_file = '$W/ca.pem' } })))
EOF
	kresd -n -c config "$W/kresd" >"$logf" 2>&1 &
	echo $!
}

start_stubby() {
	local port=$1 logf=$2
	cat >"$W/stubby.yml" <<EOF
resolution_type: GETDNS_RESOLUTION_STUB
dns_transport_list:
  - GETDNS_TRANSPORT_TLS
tls_authentication: GETDNS_AUTHENTICATION_REQUIRED
tls_query_padding_blocksize: 0
edns_client_subnet_private: 0
round_robin_upstreams: 0
idle_timeout: 10000
limit_outstanding_queries: 0
tls_ca_file: "$W/ca.pem"
listen_addresses:
  - 127.0.0.1@$port
upstream_recursive_servers:
  - address_data: 127.0.0.1
    tls_port: $UP_PORT
    tls_auth_name: "dns.test"
EOF
	stubby -C "$W/stubby.yml" >"$logf" 2>&1 &
	echo $!
}

installed() {
	case $1 in
	dotproxy-before) [ -x "$W/dotproxy-before" ] ;;
	dotproxy* | dnsdist) return 0 ;;
	unbound) command -v unbound >/dev/null ;;
	kresd) command -v kresd >/dev/null ;;
	stubby) command -v stubby >/dev/null ;;
	*) return 1 ;;
	esac
}

# ---------------------------------------------------------------- measuring

# completed FILE: "Queries completed" from a dnsperf output.
completed() { awk '/Queries completed/{print $3; exit}' "$1"; }

# throughput LABEL MODE PORT Q [PID]: best qps of ROUNDS runs; sets qps,
# lost, conns, and, for the best run, cpu_sat: CPU s per 1k completed
# queries of PID (the proxy), up_sat the same for the upstream.
throughput() {
	local label=$1 mode=$2 port=$3 q=$4 pid=${5:-} r f sampler s best=0 bestlost="" maxc=0
	local t0=0 t1=0 u0 u1 n c okp
	cpu_sat=- up_sat=-
	for ((r = 1; r <= ROUNDS; r++)); do
		f="$OUT/$rp$label.max.$r.txt"
		(
			m=0
			end=$((SECONDS + DURATION + 3))
			while ((SECONDS < end)); do
				n=$(bench_conns "$UP_PORT")
				((n > m)) && m=$n
				echo "$m" >"$W/conns"
				sleep 0.5
			done
		) &
		sampler=$!
		[ -n "$pid" ] && t0=$(cpu_ticks "$pid")
		u0=$(cpu_ticks "$up_pid")
		dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$W/q.txt" -l "$DURATION" \
			-c "$pass_clients" -q "$q" -t 2 >"$f" 2>&1 || true
		[ -n "$pid" ] && t1=$(cpu_ticks "$pid")
		u1=$(cpu_ticks "$up_pid")
		kill "$sampler" 2>/dev/null || true
		wait "$sampler" 2>/dev/null || true
		n=$(completed "$f")
		# Count only NOERROR answers: a proxy that fails fast is not fast.
		s=$(awk '/Run time/{t=$4} /Response codes/{for (i=3;i<=NF;i++) if ($i=="NOERROR" || $i=="NOERROR,") n=$(i+1)}
			/Queries sent/{sent=$3}
			END{ if (t > 0) printf "%d %.2f%%", n/t, (sent > 0 ? 100*n/sent : 0) }' "$f")
		read -r s okp <<<"${s:-0 0%}"
		c=$(cat "$W/conns" 2>/dev/null || echo 0)
		((c > maxc)) && maxc=$c
		if ((s > best)); then
			best=$s
			bestlost=$okp
			[ -n "$pid" ] && cpu_sat=$(cpu_per_1k $((t1 - t0)) "${n:-0}")
			up_sat=$(cpu_per_1k $((u1 - u0)) "${n:-0}")
		fi
		log "  $label throughput run $r: $s qps, upstream conns <= $c"
	done
	qps=$best lost=${bestlost:-?} conns=$maxc
}

# latency LABEL MODE PORT [PID]: fixed RATE for LAT_DURATION over
# lat_clients sockets or connections; sets p50 p99 (ms) and cpu_lat, CPU s
# per 1k completed queries of PID. A query that got no answer within the
# timeout (dnsperf's "> T name type" line, which has no latency) counts as
# taking the timeout: a lower bound, so a percentile that reaches the lost
# queries reads as the timeout, never as less.
latency() {
	local label=$1 mode=$2 port=$3 pid=${4:-} f="$OUT/$rp$1.lat.txt" t0=0 t1=0 to=2
	cpu_lat=-
	[ -n "$pid" ] && t0=$(cpu_ticks "$pid")
	dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$W/q.txt" -l "$LAT_DURATION" \
		-c "$lat_clients" -q 1000 -Q "$RATE" -t "$to" -v >"$f" 2>&1 || true
	[ -n "$pid" ] && t1=$(cpu_ticks "$pid")
	[ -n "$pid" ] && cpu_lat=$(cpu_per_1k $((t1 - t0)) "$(completed "$f")")
	read -r p50 p99 <<<"$(awk -v to="$to" '/^> T /{print to; next} /^> /{print $NF}' "$f" | sort -n | awk '
		{v[NR]=$1} END{ if (NR==0) {print "nan nan"; exit}
		i=int(NR*0.50); if (i<NR*0.50) i++; if (i<1) i=1
		j=int(NR*0.99); if (j<NR*0.99) j++; if (j<1) j=1
		printf "%.3f %.3f\n", v[i]*1000, v[j]*1000 }')"
	# Keep the summary, drop the per-query lines (a few MB).
	grep -v '^> ' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
}

# diff_ms A B: A-B with a sign, or "-".
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a != "nan" && b != "nan" && a != "" && b != "") printf "%+.3f", a-b; else print "-" }'; }

# Rows of one run, tab-separated, in this order (results.tsv has a header):
# label qps ratio pair_qps p50 p99 add50 add99 pair50 pair99 cpu_sat cpu_lat
# conns rss_idle rss_warm rss_end rss_peak up_sat noerror busy
TSV_HEAD="label	qps	ratio	pair_qps	p50	p99	add50	add99	pair50	pair99	cpu_sat_s_per_1k	cpu_rate_s_per_1k	conns	rss_idle_mib	rss_warm_mib	rss_end_mib	rss_peak_mib	upstream_cpu_sat_s_per_1k	noerror_pct	other_load_pct"
results=()
skipped=()
row() { results+=("$(printf '%s\t' "$@")"); }

run_baseline() {
	local busy
	busy=$(quiet)
	log "baseline ($ct pass): dnsperf DoT straight to the upstream, -c $pass_clients (other load ${busy}%)"
	# Warm-up, not counted.
	dnsperf -m dot -s 127.0.0.1 -p "$UP_PORT" -d "$W/q.txt" -l 2 -c "$pass_clients" -q "$BASE_OUTSTANDING" >/dev/null 2>&1 || true
	throughput baseline dot "$UP_PORT" "$BASE_OUTSTANDING"
	latency baseline dot "$UP_PORT"
	base_qps=$qps
	row baseline "$qps" 1.00 - "$p50" "$p99" - - - - - - "$conns" - - - - "$up_sat" "$lost" "$busy"
	log "  baseline: $qps qps, p50 $p50 ms, p99 $p99 ms at $RATE qps"
}

# run_proxy LABEL KIND [ENV=VAL...]
run_proxy() {
	local label=$1 kind=$2 port pid busy rss0 rss1 rss2 hwm ratio add50 add99 pair_qps pair50 pair99 c_sat
	shift 2
	if ! installed "$kind"; then
		[[ " ${skipped[*]} " == *" $kind "* ]] || skipped+=("$kind")
		log "$label: not installed, skipped"
		return 0
	fi
	port=$(free_port)
	pid=$("start_${kind//-/_}" "$port" "$OUT/$rp$label.log" "$@")
	track "$pid"
	if ! ready "$ct" "$port"; then
		log "$label did not answer; see $OUT/$rp$label.log"
		stop "$pid"
		row "$label" failed - - - - - - - - - - - - - - - - - -
		return 0
	fi
	rss0=$(rss_kb "$pid")
	busy=$(quiet)
	log "$label on 127.0.0.1:$port, $ct clients, pid $pid (other load ${busy}%)"
	dnsperf -m "$ct" -s 127.0.0.1 -p "$port" -d "$W/q.txt" -l 2 -c "$pass_clients" -q "$pass_outstanding" >/dev/null 2>&1 || true
	rss1=$(rss_kb "$pid")
	throughput "$label.base" dot "$UP_PORT" "$BASE_OUTSTANDING"
	pair_qps=$qps
	throughput "$label" "$ct" "$port" "$pass_outstanding" "$pid"
	c_sat=$cpu_sat
	latency "$label.base" dot "$UP_PORT"
	pair50=$p50 pair99=$p99
	latency "$label" "$ct" "$port" "$pid"
	rss2=$(rss_kb "$pid")
	hwm=$(hwm_kb "$pid")
	stop "$pid"
	ratio=$(awk -v a="$qps" -v b="$pair_qps" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }')
	add50=$(diff_ms "$p50" "$pair50")
	add99=$(diff_ms "$p99" "$pair99")
	row "$label" "$qps" "$ratio" "$pair_qps" "$p50" "$p99" "$add50" "$add99" "$pair50" "$pair99" \
		"$c_sat" "$cpu_lat" "$conns" "$(mib "$rss0")" "$(mib "$rss1")" "$(mib "$rss2")" "$(mib "$hwm")" \
		"$up_sat" "$lost" "$busy"
	log "  $label: $qps qps (${ratio}x), added p50 $add50 / p99 $add99 ms at $RATE qps, CPU s/1k $c_sat / $cpu_lat, conns $conns, RSS $(mib "$rss2") MiB"
}

# report_run N: results.N.md and results.N.tsv of run N's UDP pass (the rows
# so far), results.N.tcp.md and results.N.tcp.tsv of its TCP pass (ct=tcp).
report_run() {
	local n=$1 sfx="" title tsv
	if [ "$ct" = tcp ]; then
		sfx=.tcp
		title="TCP clients: dnsperf -m tcp -c $TCP_CLIENTS, -q $TCP_OUTSTANDING at saturation, -c $TCP_CLIENTS at $RATE qps; DoT baselines -c $TCP_CLIENTS -q $BASE_OUTSTANDING"
	else
		title="UDP clients: dnsperf -m udp -c $CLIENTS, -q $OUTSTANDING at saturation, -c 1 at $RATE qps; DoT baselines -c $CLIENTS -q $BASE_OUTSTANDING"
	fi
	tsv="$OUT/results.$n$sfx.tsv"
	{
		echo "$TSV_HEAD"
		printf '%s\n' "${results[@]}" | sed 's/\t$//'
	} >"$tsv"
	{
		echo "### Run $n of $RUNS, $title; $pass_start"
		echo
		echo "| target | QPS | QPS / baseline (paired baseline) | QPS / dnsdist (paired) | added p50 / p99 ms @$RATE (paired baseline p50 / p99) | p50 / p99 ms @$RATE | CPU s/1k, saturation / @$RATE | upstream conns | RSS MiB idle / warm / end (peak) | upstream CPU s/1k, saturation | NOERROR % of sent | other load % |"
		echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
		awk -F'\t' 'NR == 1 { next }
			$1 == "dnsdist" && $2 != "failed" { dq = $2; dr = $3 }
			{ l[NR] = $0 }
			END {
				for (i = 2; i <= NR; i++) {
					split(l[i], f, "\t")
					vs = "-"
					if (dq > 0 && f[2] != "failed" && f[1] !~ /^baseline/)
						vs = sprintf("%.2f (%.2f)", f[2] / dq, (dr > 0 && f[3] != "-" ? f[3] / dr : 0))
					if (f[1] ~ /^baseline/) {
						printf "| %s | %s | %s | - | - | %s / %s | - | %s | - | %s | %s | %s |\n", f[1], f[2], f[3], f[5], f[6], f[13], f[18], f[19], f[20]
					} else if (f[2] == "failed") {
						printf "| %s | failed | | | | | | | | | | |\n", f[1]
					} else {
						printf "| %s | %s | %s (%s) | %s | %s / %s (%s / %s) | %s / %s | %s / %s | %s | %s / %s / %s (%s) | %s | %s | %s |\n",
							f[1], f[2], f[3], f[4], vs, f[7], f[8], f[9], f[10], f[5], f[6], f[11], f[12], f[13],
							f[14], f[15], f[16], f[17], f[18], f[19], f[20]
					}
				}
			}' "$tsv"
	} >"$OUT/results.$n$sfx.md"
}

start_time=$(date -u +%FT%TZ)
for ((run = 1; run <= RUNS; run++)); do
	((RUNS > 1)) && log "run $run of $RUNS"
	# One pass of every target per client transport. The pass_* settings are
	# what throughput, latency, run_baseline and run_proxy read.
	for ct in $CLIENT_TRANSPORTS; do
		results=()
		rp=""
		((RUNS > 1)) && rp="r$run."
		if [ "$ct" = tcp ]; then
			rp+="tcp."
			pass_clients=$TCP_CLIENTS pass_outstanding=$TCP_OUTSTANDING lat_clients=$TCP_CLIENTS
		else
			pass_clients=$CLIENTS pass_outstanding=$OUTSTANDING lat_clients=1
		fi
		pass_start=$(date -u +%FT%TZ)
		log "$ct clients"
		for t in $TARGETS; do
			case $t in
			baseline) run_baseline ;;
			dotproxy)
				run_proxy dotproxy dotproxy
				# The sweep is for the UDP pass only: the TCP pass is the defaults.
				if [ -n "$SWEEP" ] && [ "$ct" = udp ]; then
					IFS=';' read -ra variants <<<"$SWEEP"
					for v in "${variants[@]}"; do
						read -ra words <<<"$v"
						run_proxy "dotproxy ${words[0]}" dotproxy "${words[@]:1}"
					done
				fi
				;;
			*) run_proxy "$t" "$t" ;;
			esac
		done
		# The baseline again at the end: how much the machine drifted during the run.
		if [[ " $TARGETS " == *" baseline "* ]]; then
			first_base=$base_qps
			busy=$(quiet)
			throughput baseline-end dot "$UP_PORT" "$BASE_OUTSTANDING"
			row "baseline again, at the end" "$qps" \
				"$(awk -v a="$qps" -v b="$first_base" 'BEGIN{printf "%.2f", (b > 0 ? a/b : 0)}')" \
				- - - - - - - - - "$conns" - - - - "$up_sat" "$lost" "$busy"
		fi
		report_run "$run"
	done
done

# ---------------------------------------------------------------- report

# The targets of issue 9 for dotproxy (and dotproxy-before), run by run.
summary() {
	echo "### Issue 9 targets, run by run"
	echo
	echo "| run | target | QPS / dnsdist (paired) | ≥ 1.15 | CPU s/1k @$RATE (dnsdist's) | ≤ dnsdist | added p50 / p99 ms | ≤ +0.03 / +0.10 | upstream conns | ≤ 4 | RSS end / peak MiB |"
	echo "|--:|---|--:|:-:|--:|:-:|--:|:-:|--:|:-:|--:|"
	for ((run = 1; run <= RUNS; run++)); do
		awk -F'\t' -v run="$run" 'NR == 1 { next }
			$1 == "dnsdist" && $2 != "failed" { dq = $2; dr = $3; dc = $12 }
			$1 ~ /^dotproxy/ && $2 != "failed" { n++; l[n] = $0 }
			function yn(b) { return b ? "yes" : "**no**" }
			END {
				for (i = 1; i <= n; i++) {
					split(l[i], f, "\t")
					if (dq > 0) { v = f[2] / dq; vp = (dr > 0 ? f[3] / dr : 0); vs = sprintf("%.2f (%.2f)", v, vp); ok = yn(v >= 1.15) }
					else { vs = "no dnsdist"; ok = "-" }
					cs = (dc != "" && dc != "-") ? sprintf("%s (%s)", f[12], dc) : f[12]
					cok = (dc != "" && dc != "-" && f[12] != "-") ? yn(f[12] + 0 <= dc + 0) : "-"
					lok = (f[7] != "-" && f[8] != "-") ? yn(f[7] + 0 <= 0.03 && f[8] + 0 <= 0.10) : "-"
					printf "| %d | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s / %s |\n",
						run, f[1], vs, ok, cs, cok, f[7], f[8], lok, f[13], yn(f[13] + 0 <= 4), f[16], f[17]
				}
			}' "$OUT/results.$run.tsv"
	done
	echo
	# One line per dotproxy target: its QPS / dnsdist in each run.
	for ((run = 1; run <= RUNS; run++)); do
		awk -F'\t' -v run="$run" 'NR == 1 { next }
			$1 == "dnsdist" && $2 != "failed" { dq = $2 }
			$1 ~ /^dotproxy/ { n++; lab[n] = $1; q[n] = $2 }
			END { for (i = 1; i <= n; i++) printf "%s\t%d\t%s\n", lab[i], run, (dq > 0 && q[i] != "failed" ? sprintf("%.2f", q[i] / dq) : "-") }' "$OUT/results.$run.tsv"
	done | awk -F'\t' '{ if (!($1 in v)) order[++n] = $1; v[$1] = v[$1] " " $3 }
		END { for (i = 1; i <= n; i++) printf "- %s, QPS / dnsdist by run:%s\n", order[i], v[order[i]] }'
	echo
	echo "QPS / dnsdist: dotproxy's NOERROR qps over dnsdist's in the same run; in brackets each first divided by its own paired baseline. RSS ≤ 25 MiB and flat, and sparse traffic, are measured by bench/soak.sh and bench/sparse.sh."
}

# The TCP pass's dotproxy rows next to dnsdist's, run by run: the
# before-and-after view for TCP clients (no targets are set for them).
tcp_summary() {
	echo "### TCP clients: dotproxy against dnsdist, run by run"
	echo
	echo "| run | target | QPS | QPS / dnsdist (paired) | CPU s/1k saturation (dnsdist's) | CPU s/1k @$RATE (dnsdist's) | added p50 / p99 ms @$RATE (dnsdist's) | upstream conns (dnsdist's) | RSS end / peak MiB |"
	echo "|--:|---|--:|--:|--:|--:|--:|--:|--:|"
	for ((run = 1; run <= RUNS; run++)); do
		awk -F'\t' -v run="$run" 'NR == 1 { next }
			$1 == "dnsdist" && $2 != "failed" { d = 1; dq = $2; dr = $3; ds = $11; dc = $12; d50 = $7; d99 = $8; dn = $13 }
			$1 ~ /^dotproxy/ { n++; l[n] = $0 }
			function br(v, w) { return d ? sprintf("%s (%s)", v, w) : v }
			END {
				for (i = 1; i <= n; i++) {
					split(l[i], f, "\t")
					if (f[2] == "failed") { printf "| %d | %s | failed | | | | | | |\n", run, f[1]; continue }
					vs = (dq > 0) ? sprintf("%.2f (%.2f)", f[2] / dq, (dr > 0 && f[3] != "-" ? f[3] / dr : 0)) : "no dnsdist"
					printf "| %d | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", run, f[1], f[2], vs,
						br(f[11], ds), br(f[12], dc), br(f[7] " / " f[8], d50 " / " d99), br(f[13], dn), f[16], f[17]
				}
			}' "$OUT/results.$run.tcp.tsv"
	done
	echo
	echo "QPS / dnsdist: NOERROR qps over dnsdist's in the same TCP pass; in brackets each first divided by its own paired baseline. No targets are set for TCP clients."
}

has_pass() { [[ " $CLIENT_TRANSPORTS " == *" $1 "* ]]; }

{
	echo "# dotproxy side-by-side, $start_time"
	echo
	echo "dotproxy $dp_rev (\`git rev-parse --short HEAD\`: $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown))${DOTPROXY_BEFORE_BIN:+; dotproxy-before: $DOTPROXY_BEFORE_REV}; $(dnsdist --version 2>/dev/null | head -1); $(dnsperf -h 2>&1 | grep -m1 Version)"
	echo "$(nproc) CPUs; kernel $(uname -r); DURATION=${DURATION}s x ROUNDS=$ROUNDS (best), RATE=$RATE qps for ${LAT_DURATION}s,"
	echo "CLIENTS=$CLIENTS, OUTSTANDING=$OUTSTANDING (baseline $BASE_OUTSTANDING), NAMES=$NAMES, RUNS=$RUNS; TARGETS=\"$TARGETS\";"
	echo "CLIENT_TRANSPORTS=\"$CLIENT_TRANSPORTS\", TCP_CLIENTS=$TCP_CLIENTS, TCP_OUTSTANDING=$TCP_OUTSTANDING"
	echo
	if has_pass udp; then
		echo "## UDP clients"
		echo
		for ((run = 1; run <= RUNS; run++)); do
			cat "$OUT/results.$run.md"
			echo
		done
		summary
		echo
	fi
	if has_pass tcp; then
		echo "## TCP clients"
		echo
		echo "dnsperf -m tcp to each target: $TCP_CLIENTS connections, $TCP_OUTSTANDING queries outstanding over them at saturation, $RATE qps over them for latency; paired baselines DoT with $TCP_CLIENTS TLS connections. No SWEEP variants."
		echo
		for ((run = 1; run <= RUNS; run++)); do
			cat "$OUT/results.$run.tcp.md"
			echo
		done
		tcp_summary
	fi
	if ((${#skipped[@]})); then
		echo
		echo "Not installed, skipped: ${skipped[*]}"
	fi
} >"$OUT/results.md"
cat "$OUT/results.md"
log "logs and results in $OUT"
