#!/usr/bin/env bash
# End-to-end test of the built dotproxy binary against real software:
# Debian's unbound as the DNS-over-TLS upstream (local answers only, no
# internet), kdig as the client over UDP and TCP, tcpdump/tshark proving that
# nothing readable leaves on the DoT side.
#
#   sudo bash e2e/run.sh          # root: tcpdump needs it
#   E2E_KEEP=1 bash e2e/run.sh    # keep the work directory for a look
#
# Needs: go, openssl, unbound, kdig (knot-dnsutils), tcpdump, tshark, ss
# (iproute2); dnsperf is used when present. Everything listens on 127.0.0.1
# and ::1 on free high ports; every loop is bounded; every process started
# here is stopped on exit. Ends with "N passed, N failed".
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/lib.sh
. "$E2E_ROOT/e2e/lib.sh"

for tool in go openssl unbound unbound-checkconf kdig tcpdump ss; do
	command -v "$tool" >/dev/null || {
		echo "e2e: $tool is not installed" >&2
		exit 2
	}
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-e2e.XXXXXX")
chmod 0755 "$WORK"
TCPDUMP_PID=
on_exit() {
	local rc=$?
	if declare -F statsd_stop >/dev/null; then statsd_stop || true; fi
	[ -n "$TCPDUMP_PID" ] && e2e_stop "$TCPDUMP_PID"
	e2e_cleanup
	if [ "$e2e_fail" -gt 0 ] || [ "$rc" -ne 0 ]; then
		e2e_dump_logs "$WORK"
	fi
	if [ "${E2E_KEEP:-0}" = 1 ]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

HAVE_V6=0
if ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128'; then HAVE_V6=1; fi

# ---------------------------------------------------------------------------
e2e_section "build (as the Dockerfile does)"
VERSION="e2e-$(git -C "$E2E_ROOT" rev-parse --short HEAD 2>/dev/null || echo dev)"
BIN=$WORK/dotproxy
e2e_build "$BIN" "$VERSION"
e2e_log "built $BIN ($VERSION)"
# Output is captured before grep: grep -q in a pipeline may exit early and
# make the writer die of SIGPIPE, which pipefail would count as a failure.
version_stamped() {
	local out
	out=$("$BIN" -version 2>&1) && grep -qF -- "$VERSION" <<<"$out"
}
help_lists_vars() {
	local out
	out=$("$BIN" -h 2>&1) || true
	grep -q DOTPROXY_UPSTREAMS <<<"$out" && grep -q DOTPROXY_LISTEN <<<"$out"
}
bad_setting_exits_2() {
	local out rc=0
	out=$(env DOTPROXY_UPSTREAMS="not a host:port:x" timeout 10 "$BIN" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && grep -q DOTPROXY_UPSTREAMS <<<"$out"
}
e2e_check "-version prints the stamped version" version_stamped
e2e_check "-h lists the DOTPROXY_ variables" help_lists_vars
e2e_check "a bad setting stops start-up with exit 2 naming the variable" bad_setting_exits_2

# ---------------------------------------------------------------------------
e2e_section "upstream: unbound over DoT"
e2e_certs "$WORK"
UP_PORT=$(e2e_free_port)
e2e_unbound "$WORK" "$UP_PORT"
e2e_log "unbound $(unbound -V | head -n 1) on 127.0.0.1:$UP_PORT (tls name $E2E_ZONE)"

# ---------------------------------------------------------------------------
e2e_section "capture on lo"
LP=$(e2e_free_port)
# Port 53 is captured too, to show that no plain DNS goes the upstream's way.
# --immediate-mode: libpcap otherwise hands packets over a block at a time,
# and the packets of the last block before tcpdump stops are lost without
# being counted as dropped.
tcpdump -i lo -n -U --immediate-mode -Z root -s 0 -w "$WORK/lo.pcap" \
	"tcp port $UP_PORT or port $LP or port 53" >"$WORK/tcpdump.log" 2>&1 &
TCPDUMP_PID=$!
for ((i = 0; i < 50; i++)); do
	grep -q 'listening on' "$WORK/tcpdump.log" 2>/dev/null && break
	sleep 0.1
done
grep -q 'listening on' "$WORK/tcpdump.log" || {
	echo "tcpdump did not start" >&2
	exit 1
}
e2e_log "tcpdump capturing tcp port $UP_PORT (DoT), port $LP (clients) and port 53"

# start_proxy NAME PORT VAR=value...: starts the binary with DOTPROXY_LISTEN
# on 127.0.0.1:PORT (and [::1]:PORT) plus the given settings, waits until it
# answers, and sets PROXY_PID.
start_proxy() {
	local name=$1 port=$2 listen
	shift 2
	listen="127.0.0.1:$port"
	[ "$HAVE_V6" = 1 ] && listen="$listen,[::1]:$port"
	env DOTPROXY_LISTEN="$listen" DOTPROXY_LOG_LEVEL=debug DOTPROXY_LOG_FORMAT=text \
		"$@" "$BIN" >"$WORK/$name.log" 2>&1 &
	PROXY_PID=$!
	e2e_track "$PROXY_PID"
	e2e_wait_dns 127.0.0.1 "$port" "$PROXY_PID"
}

# q PORT ARGS...: one kdig query to 127.0.0.1:PORT; output in $OUT.
q() {
	local port=$1
	shift
	OUT=$(kdig @127.0.0.1 -p "$port" +time=6 +retry=0 "$@" 2>&1) || true
}
status_is() { grep -q "status: $1" <<<"$OUT"; }
has_tc() { grep -Eiq '^;; flags:[^;]* tc( |;)' <<<"$OUT"; }
# truncated NAME: a truncated reply as RFC 1035 wants it: TC set, the
# question echoed (kdig itself rejects a reply whose ID does not match).
truncated() { has_tc && grep -q 'QUERY: 1;' <<<"$OUT" && grep -Eq "^;; $1\.[[:space:]]+IN[[:space:]]+TXT" <<<"$OUT"; }
txt_count() { grep -Ec "^$1\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+TXT" <<<"$OUT" || true; }
over_tcp() { grep -q '^;; From .*(TCP)' <<<"$OUT"; }
over_udp() { grep -q '^;; From .*(UDP)' <<<"$OUT"; }
# answered_txt NAME COUNT UDP|TCP: NOERROR with all COUNT records, received
# over that transport (and for UDP without TC).
answered_txt() {
	status_is NOERROR && [ "$(txt_count "$1")" -eq "$2" ] || return 1
	case $3 in
	UDP) over_udp && ! has_tc ;;
	TCP) over_tcp ;;
	esac
}
answered_a() { status_is NOERROR && grep -Eq "^$E2E_A_NAME\.[[:space:]].*IN[[:space:]]+A[[:space:]]+$E2E_A_ADDR" <<<"$OUT"; }

# ---------------------------------------------------------------------------
# Metrics: e2e/statsd.sh (when present) runs a real statsd server; the main
# proxy sends to it and its metrics are checked after the queries below.
STATSD_ENV=()
STATSD_ON=0
if [ -f "$E2E_ROOT/e2e/statsd.sh" ]; then
	e2e_section "statsd receiver (e2e/statsd.sh)"
	# shellcheck source=e2e/statsd.sh
	. "$E2E_ROOT/e2e/statsd.sh"
	statsd_up() { statsd_install && statsd_start; }
	e2e_check "statsd server starts" statsd_up
	if [ -n "${STATSD_ADDR:-}" ]; then
		STATSD_ON=1
		STATSD_ENV=(DOTPROXY_STATSD_ADDR="$STATSD_ADDR" DOTPROXY_STATSD_FORMAT=statsd)
		e2e_log "statsd on $STATSD_ADDR"
	fi
fi

e2e_section "dotproxy -> unbound: answers"
start_proxy main "$LP" \
	DOTPROXY_UPSTREAMS="127.0.0.1:$UP_PORT#$E2E_ZONE" \
	DOTPROXY_TLS_CA_FILE="$WORK/ca.pem" \
	DOTPROXY_QUERY_TIMEOUT=5s \
	"${STATSD_ENV[@]}"
MAIN_PID=$PROXY_PID
e2e_log "dotproxy on 127.0.0.1:$LP$([ "$HAVE_V6" = 1 ] && echo " and [::1]:$LP")"

q "$LP" "$E2E_A_NAME" A
e2e_check "A over UDP" answered_a
q "$LP" +tcp "$E2E_A_NAME" A
e2e_check "A over TCP" answered_a
if [ "$HAVE_V6" = 1 ]; then
	OUT=$(kdig @::1 -p "$LP" +time=6 +retry=0 "$E2E_A_NAME" A 2>&1) || true
	e2e_check "A over UDP on ::1" answered_a
	OUT=$(kdig @::1 -p "$LP" +time=6 +retry=0 +tcp "$E2E_A_NAME" A 2>&1) || true
	e2e_check "A over TCP on ::1" answered_a
fi
q "$LP" "nosuchname.$E2E_ZONE" A
e2e_check "NXDOMAIN passes through" status_is NXDOMAIN

# Truncation. mid is ~680 bytes, big ~1750 bytes on the wire.
q "$LP" +noedns +ignore "$E2E_MID_NAME" TXT
e2e_check "mid TXT over UDP without EDNS: TC=1, question kept" truncated "$E2E_MID_NAME"
q "$LP" +noedns "$E2E_MID_NAME" TXT
e2e_check "mid TXT over UDP without EDNS: kdig retries over TCP, full answer" \
	answered_txt "$E2E_MID_NAME" "$E2E_MID_COUNT" TCP
q "$LP" +bufsize=1232 "$E2E_MID_NAME" TXT
e2e_check "mid TXT over UDP with EDNS 1232: whole answer, no TC" \
	answered_txt "$E2E_MID_NAME" "$E2E_MID_COUNT" UDP
q "$LP" +noedns +ignore "$E2E_BIG_NAME" TXT
e2e_check "big TXT over UDP without EDNS: TC=1, question kept" truncated "$E2E_BIG_NAME"
q "$LP" +noedns "$E2E_BIG_NAME" TXT
e2e_check "big TXT over UDP without EDNS: kdig retries over TCP, full answer" \
	answered_txt "$E2E_BIG_NAME" "$E2E_BIG_COUNT" TCP
q "$LP" +bufsize=1232 +ignore "$E2E_BIG_NAME" TXT
e2e_check "big TXT over UDP with EDNS 1232: TC=1, question kept" truncated "$E2E_BIG_NAME"
q "$LP" +bufsize=512 +ignore "$E2E_BIG_NAME" TXT
e2e_check "big TXT over UDP with EDNS 512: TC=1, question kept" truncated "$E2E_BIG_NAME"
q "$LP" +bufsize=1232 "$E2E_BIG_NAME" TXT
e2e_check "big TXT over UDP: kdig retries over TCP, full answer" \
	answered_txt "$E2E_BIG_NAME" "$E2E_BIG_COUNT" TCP
q "$LP" +bufsize=4096 "$E2E_BIG_NAME" TXT
e2e_check "big TXT over UDP with EDNS 4096: whole answer over UDP" \
	answered_txt "$E2E_BIG_NAME" "$E2E_BIG_COUNT" UDP
q "$LP" +tcp "$E2E_BIG_NAME" TXT
e2e_check "big TXT over TCP: full answer" \
	answered_txt "$E2E_BIG_NAME" "$E2E_BIG_COUNT" TCP

# Several queries on one client TCP connection.
q "$LP" +tcp +keepopen "$E2E_A_NAME" A "$E2E_MID_NAME" TXT "$E2E_BIG_NAME" TXT "nosuchname.$E2E_ZONE" A
four_answers() {
	[ "$(grep -c 'status: NOERROR' <<<"$OUT")" -eq 3 ] &&
		[ "$(grep -c 'status: NXDOMAIN' <<<"$OUT")" -eq 1 ]
}
e2e_check "4 queries on one kept-open TCP connection" four_answers

# A short, bounded load: 3 s at 200 queries/s over UDP.
if command -v dnsperf >/dev/null; then
	printf '%s A\n%s TXT\n%s TXT\n' "$E2E_A_NAME" "$E2E_MID_NAME" "nosuchname.$E2E_ZONE" >"$WORK/dnsperf.in"
	dnsperf -s 127.0.0.1 -p "$LP" -d "$WORK/dnsperf.in" -l 3 -Q 200 -t 5 -c 4 \
		>"$WORK/dnsperf.log" 2>&1 || true
	e2e_log "dnsperf: $(grep -E 'Queries (sent|completed|lost)' "$WORK/dnsperf.log" | tr -s ' ' | paste -sd ';' -)"
	none_lost() {
		grep -Eq 'Queries sent: +[1-9]' "$WORK/dnsperf.log" &&
			grep -Eq 'Queries lost: +0 ' "$WORK/dnsperf.log"
	}
	e2e_check "dnsperf 3 s at 200 q/s over UDP: every query answered" none_lost
fi

# ---------------------------------------------------------------------------
e2e_section "healthcheck"
HC_LISTEN="127.0.0.1:$LP"
e2e_check "dotproxy healthcheck exits 0 against the running proxy" \
	env DOTPROXY_LISTEN="$HC_LISTEN" timeout 20 "$BIN" healthcheck
DEAD_PORT=$(e2e_free_port)
healthcheck_fails() { ! env DOTPROXY_LISTEN="127.0.0.1:$DEAD_PORT" timeout 20 "$BIN" healthcheck; }
e2e_check "dotproxy healthcheck exits non-zero when nothing listens" healthcheck_fails

if [ "$STATSD_ON" = 1 ]; then
	e2e_section "metrics (e2e/statsd.sh)"
	e2e_check "dotproxy's metrics reach the statsd server" statsd_check_dotproxy
fi

# ---------------------------------------------------------------------------
e2e_section "upstream verification"
P2=$(e2e_free_port)
start_proxy ipsan "$P2" \
	DOTPROXY_UPSTREAMS="127.0.0.1:$UP_PORT" \
	DOTPROXY_TLS_CA_FILE="$WORK/ca.pem" DOTPROXY_QUERY_TIMEOUT=3s
q "$P2" "$E2E_A_NAME" A
e2e_check "upstream given by IP is verified against the certificate's IP SAN" answered_a
e2e_stop "$PROXY_PID"

P3=$(e2e_free_port)
start_proxy wrongname "$P3" \
	DOTPROXY_UPSTREAMS="127.0.0.1:$UP_PORT#wrong.test" \
	DOTPROXY_TLS_CA_FILE="$WORK/ca.pem" DOTPROXY_QUERY_TIMEOUT=2s
q "$P3" "$E2E_A_NAME" A
e2e_check "upstream with the wrong TLS name: SERVFAIL over UDP" status_is SERVFAIL
q "$P3" +tcp "$E2E_A_NAME" A
e2e_check "upstream with the wrong TLS name: SERVFAIL over TCP" status_is SERVFAIL
e2e_stop "$PROXY_PID"

P4=$(e2e_free_port)
start_proxy untrusted "$P4" \
	DOTPROXY_UPSTREAMS="127.0.0.1:$UP_PORT#$E2E_ZONE" DOTPROXY_QUERY_TIMEOUT=2s
q "$P4" "$E2E_A_NAME" A
e2e_check "upstream certificate from an untrusted CA: SERVFAIL" status_is SERVFAIL
e2e_stop "$PROXY_PID"

# ---------------------------------------------------------------------------
e2e_section "access control"
P5=$(e2e_free_port)
start_proxy refused "$P5" \
	DOTPROXY_UPSTREAMS="127.0.0.1:$UP_PORT#$E2E_ZONE" \
	DOTPROXY_TLS_CA_FILE="$WORK/ca.pem" DOTPROXY_ALLOW=192.0.2.0/24
q "$P5" "$E2E_A_NAME" A
e2e_check "client outside DOTPROXY_ALLOW: REFUSED over UDP" status_is REFUSED
q "$P5" +tcp "$E2E_A_NAME" A
e2e_check "client outside DOTPROXY_ALLOW: REFUSED over TCP" status_is REFUSED
e2e_stop "$PROXY_PID"

# ---------------------------------------------------------------------------
# edns-tcp-keepalive (issue 10 §2): a second unbound that advertises a 4 s
# idle timeout; dotproxy, told to keep idle connections for 60 s and no warm
# one, must close its connection itself (reason "idle" in its debug log)
# before the resolver does (that would be "server_closed").
e2e_section "edns-tcp-keepalive: the resolver's idle timeout"
KA_DIR=$WORK/keepalive
mkdir -p "$KA_DIR"
cp "$WORK/ca.pem" "$WORK/server.pem" "$WORK/server.key" "$KA_DIR/"
KA_UP=$(e2e_free_port)
e2e_unbound "$KA_DIR" "$KA_UP" "edns-tcp-keepalive: yes" "edns-tcp-keepalive-timeout: 4000"
KA_PORT=$(e2e_free_port)
start_proxy keepalive "$KA_PORT" \
	DOTPROXY_UPSTREAMS="127.0.0.1:$KA_UP#$E2E_ZONE" DOTPROXY_TLS_CA_FILE="$WORK/ca.pem" \
	DOTPROXY_UPSTREAM_IDLE_TIMEOUT=60s DOTPROXY_UPSTREAM_WARM_CONNS=0
q "$KA_PORT" "$E2E_A_NAME" A
e2e_check "keepalive: answered through an upstream that advertises 4 s" answered_a
ka_closed_first() {
	local i line
	for i in $(seq 1 150); do # at most 15 s; the close is due within 3 s
		line=$(grep -m 1 'upstream connection closed' "$WORK/keepalive.log" || true)
		if [ -n "$line" ]; then
			e2e_log "after about $((i / 10)).$((i % 10)) s: $line"
			grep -q 'reason=idle' <<<"$line"
			return
		fi
		sleep 0.1
	done
	e2e_log "still open after 15 s: the advertised timeout was not honoured"
	return 1
}
e2e_check "keepalive: dotproxy closed its idle connection first, at the advertised 4 s, not its own 60 s" ka_closed_first
e2e_stop "$PROXY_PID"

# ---------------------------------------------------------------------------
# Padded egress (issue 10 §4): queries whose names differ in length leave in
# TLS records whose lengths fall into 128-byte blocks. A proxy of its own
# with a single upstream connection, so that its records can be told apart
# in the capture (checked in "egress is encrypted" below); the queries go
# one at a time, so each makes exactly one record.
e2e_section "padded egress: queries for the capture"
PAD_LENGTHS=(10 30 60 120) # characters in the name asked, final dot excluded
PAD_PORT=$(e2e_free_port)
start_proxy padded "$PAD_PORT" \
	DOTPROXY_UPSTREAMS="127.0.0.1:$UP_PORT#$E2E_ZONE" \
	DOTPROXY_TLS_CA_FILE="$WORK/ca.pem" \
	DOTPROXY_UPSTREAM_MAX_CONNS=1 DOTPROXY_UPSTREAM_WARM_CONNS=1
# pad_conn PID: the local port of PID's one connection to the upstream.
pad_conn() {
	ss -Htnp state established "( dport = :$UP_PORT )" 2>/dev/null |
		awk -v pid="pid=$1," 'index($0, pid) { sub(/.*:/, "", $3); print $3 }' | sort -u
}
# pad_name LEN: a name of LEN characters under the test zone.
pad_name() {
	local suffix=".$E2E_ZONE" name="" rem
	rem=$(($1 - ${#suffix}))
	while [ "$rem" -gt 61 ]; do
		name+="$(printf '%60s' '' | tr ' ' p)."
		rem=$((rem - 61))
	done
	printf '%s%s%s' "$name" "$(printf '%*s' "$rem" '' | tr ' ' p)" "$suffix"
}
PAD_CONN_BEFORE=$(pad_conn "$PROXY_PID")
PAD_T0=$(date +%s.%N)
PAD_SENT=()
for len in "${PAD_LENGTHS[@]}"; do
	name=$(pad_name "$len")
	[ ${#name} -eq "$len" ] || echo "pad_name $len gave ${#name} characters" >&2
	# Without EDNS (dotproxy adds the OPT record) and with it.
	q "$PAD_PORT" +noedns "$name" A
	q "$PAD_PORT" +bufsize=1232 "$name" AAAA
	PAD_SENT+=("$len" "$len")
done
PAD_T1=$(date +%s.%N)
PAD_CONN_AFTER=$(pad_conn "$PROXY_PID")
e2e_stop "$PROXY_PID"
e2e_log "${#PAD_SENT[@]} queries on upstream connection from port ${PAD_CONN_BEFORE:-?} (after: ${PAD_CONN_AFTER:-?})"
e2e_check "padded egress: all the queries used one upstream connection" \
	test -n "$PAD_CONN_BEFORE" -a "$PAD_CONN_BEFORE" = "$PAD_CONN_AFTER"

# ---------------------------------------------------------------------------
e2e_section "SIGTERM"
e2e_sigterm "$MAIN_PID"
rc=$E2E_RC
e2e_log "exit status after SIGTERM: $rc"
e2e_check "SIGTERM: graceful exit with status 0 within 15 s" test "$rc" = 0

# ---------------------------------------------------------------------------
e2e_section "egress is encrypted"
e2e_stop "$TCPDUMP_PID"
TCPDUMP_PID=
tcpdump -r "$WORK/lo.pcap" -w "$WORK/dot.pcap" "tcp port $UP_PORT" 2>/dev/null
tcpdump -r "$WORK/lo.pcap" -w "$WORK/client.pcap" "port $LP" 2>/dev/null
dot_packets=$(tcpdump -r "$WORK/dot.pcap" -n 2>/dev/null | wc -l)
e2e_log "tcpdump: $(grep -E 'packets (captured|received|dropped)' "$WORK/tcpdump.log" | paste -sd ';' -)"
# A packet the kernel dropped could be the one the checks below look for.
e2e_check "capture complete: tcpdump reports no packet dropped by the kernel" \
	grep -q '^0 packets dropped by kernel' "$WORK/tcpdump.log"
e2e_log "$dot_packets packets captured on the DoT side, $(tcpdump -r "$WORK/client.pcap" -n 2>/dev/null | wc -l) on the client side"
e2e_check "capture control: the test name is readable on the client side" \
	grep -aq "$E2E_CANARY" "$WORK/client.pcap"
e2e_check "DoT side carried traffic" test "$dot_packets" -gt 20
absent() { ! grep -aqF -- "$1" "$2"; }
e2e_check "DoT side: the query name never appears in plaintext" \
	absent "$E2E_CANARY" "$WORK/dot.pcap"
e2e_check "DoT side: the TXT answer text never appears in plaintext" \
	absent "r01-00000000000000000000" "$WORK/dot.pcap"
if command -v tshark >/dev/null; then
	tshark -r "$WORK/dot.pcap" -n -d "tcp.port==$UP_PORT,tls" -Y 'tls.handshake.type == 1' \
		-T fields -e tls.handshake.extensions_server_name 2>/dev/null | sort | uniq -c >"$WORK/sni.txt" || true
	e2e_log "ClientHello SNI seen: $(tr -s ' \n' ' ' <"$WORK/sni.txt")"
	e2e_check "tshark: TLS ClientHello with SNI $E2E_ZONE on the DoT side" \
		grep -q " $E2E_ZONE\$" "$WORK/sni.txt"
	app=$(tshark -r "$WORK/dot.pcap" -n -d "tcp.port==$UP_PORT,tls" -Y 'tls.app_data' 2>/dev/null | wc -l)
	e2e_log "$app TLS application-data records on the DoT side"
	e2e_check "tshark: DNS travelled as TLS application data" test "$app" -gt 0
	plain=$(tshark -r "$WORK/dot.pcap" -n -d "tcp.port==$UP_PORT,dns" -Y "dns.qry.name contains \"$E2E_CANARY\"" 2>/dev/null | wc -l)
	e2e_check "tshark: no DNS message readable on the DoT side" test "$plain" -eq 0

	# Padding: the client-to-upstream application-data records of the
	# padded proxy's connection while its queries went out. In TLS 1.3
	# with an AEAD a record is the 2-byte length prefix, the DNS message,
	# 1 content-type byte and a 16-byte tag, so a message padded to a
	# multiple of 128 makes a record of 128*k + 19 bytes.
	# (TLS 1.3 records carry their type, 23, as tls.record.opaque_type;
	# frames that also hold a plaintext record belong to the handshake.)
	tshark -r "$WORK/dot.pcap" -n -d "tcp.port==$UP_PORT,tls" \
		-Y "tcp.srcport == ${PAD_CONN_BEFORE:-0} && tcp.dstport == $UP_PORT && tls.record.opaque_type == 23 && !tls.record.content_type" \
		-T fields -e frame.time_epoch -e tls.record.length 2>/dev/null |
		awk -v t0="$PAD_T0" -v t1="$PAD_T1" '$1 >= t0 && $1 <= t1 {
			n = split($2, lens, ","); for (i = 1; i <= n; i++) print lens[i]
		}' >"$WORK/padded-records.txt" || true
	mapfile -t PAD_RECORDS <"$WORK/padded-records.txt"
	e2e_log "TLS version of the padded connection: $(tshark -r "$WORK/dot.pcap" -n -d "tcp.port==$UP_PORT,tls" \
		-Y "tcp.dstport == ${PAD_CONN_BEFORE:-0} && tls.handshake.type == 2" -T fields \
		-e tls.handshake.extensions.supported_version 2>/dev/null | head -n 1)"
	# padded_blocks: per name length, the record lengths, whether each is
	# 128*k + 19, and the set of k; passes when every record is in blocks
	# and at least two name lengths share one set of k.
	padded_blocks() {
		local i len rec ok=1 same=0 a b
		declare -A blocks=() lens=()
		if [ "${#PAD_RECORDS[@]}" -ne "${#PAD_SENT[@]}" ]; then
			e2e_log "${#PAD_RECORDS[@]} records for ${#PAD_SENT[@]} queries: ${PAD_RECORDS[*]:-none}"
			return 1
		fi
		for i in "${!PAD_SENT[@]}"; do
			len=${PAD_SENT[$i]} rec=${PAD_RECORDS[$i]}
			lens[$len]+=" $rec"
			if [ $(((rec - 19) % 128)) -ne 0 ]; then
				ok=0
			else
				case " ${blocks[$len]:-} " in
				*" $(((rec - 19) / 128)) "*) ;;
				*) blocks[$len]+=" $(((rec - 19) / 128))" ;;
				esac
			fi
		done
		for len in "${PAD_LENGTHS[@]}"; do
			e2e_log "name of $len characters: records of${lens[$len]} bytes; 128-byte blocks:${blocks[$len]:- none}"
		done
		for len in "${!blocks[@]}"; do # as sets: sorted
			blocks[$len]=$(tr ' ' '\n' <<<"${blocks[$len]}" | sort -n | paste -sd ' ' -)
		done
		for a in "${PAD_LENGTHS[@]}"; do
			for b in "${PAD_LENGTHS[@]}"; do
				if [ "$a" -lt "$b" ] && [ -n "${blocks[$a]:-}" ] && [ "${blocks[$a]}" = "${blocks[$b]:-}" ]; then
					same=1
				fi
			done
		done
		[ "$ok" = 1 ] && [ "$same" = 1 ]
	}
	e2e_check "egress: queries of ${PAD_LENGTHS[*]}-character names leave in 128-byte-block TLS records, two lengths alike" \
		padded_blocks
else
	e2e_check "egress: 128-byte-block TLS records (tshark is not installed)" false
fi
# No plain DNS towards the upstream: nothing to or from port 53 on its
# address during the whole run (the capture includes port 53).
port53=$(tcpdump -r "$WORK/lo.pcap" -n "port 53 and dst host 127.0.0.1" 2>/dev/null | wc -l)
e2e_log "$port53 packets to port 53 on 127.0.0.1 in the capture ($(tcpdump -r "$WORK/lo.pcap" -n 2>/dev/null | wc -l) packets in all)"
e2e_check "egress: no packet on port 53 (UDP or TCP) towards the upstream's address" test "$port53" -eq 0

e2e_summary
