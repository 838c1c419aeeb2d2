#!/usr/bin/env bash
# Differential transparency corpus (issue 10 §3): a few hundred generated
# queries, each asked once through dotproxy over UDP, once over TCP, and
# once straight to the same resolver over plain TCP. The answers must be the
# resolver's byte for byte apart from the ID, truncated over UDP exactly
# where RFC 1035/6891 demand, or one of dotproxy's documented own answers
# (its FORMERR, REFUSED and SERVFAIL), which are counted apart as "intended".
# The comparison itself is e2e/transparency (Go).
#
#   bash e2e/transparency.sh          # ends with "N passed, N failed"
#   E2E_KEEP=1 bash e2e/transparency.sh
#   TRANSPARENCY_FLAGS="-v -show 10" bash e2e/transparency.sh  # every verdict
#
# The resolver is Debian's unbound: plainZone from local-data, signed.test
# as an auth-zone signed here with ldns-signzone and validated against a
# trust anchor (so AD, DO and CD take part). It never queries anything:
# every address is in do-not-query-address. Needs go, openssl, unbound,
# kdig, ldns-keygen and ldns-signzone (ldnsutils), ss. Everything listens on
# 127.0.0.1 high ports; every wait is bounded; everything started here is
# stopped on exit.
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/lib.sh
. "$E2E_ROOT/e2e/lib.sh"
e2e_require transparency.sh go openssl unbound unbound-checkconf kdig ldns-keygen ldns-signzone ss

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-transparency.XXXXXX")
chmod 0755 "$WORK"
on_exit() {
	local rc=$?
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

# ---------------------------------------------------------------------------
e2e_section "build"
BIN=$WORK/dotproxy
e2e_build "$BIN" transparency
(cd "$E2E_ROOT" && go build -o "$WORK/transparency" ./e2e/transparency)
e2e_log "built $BIN and $WORK/transparency"

# ---------------------------------------------------------------------------
e2e_section "zones"
"$WORK/transparency" zones "$WORK"
# A KSK and a ZSK, NSEC, signatures valid from yesterday for 30 days.
(
	cd "$WORK"
	ksk=$(ldns-keygen -a ECDSAP256SHA256 -k signed.test)
	zsk=$(ldns-keygen -a ECDSAP256SHA256 signed.test)
	ldns-signzone -i "$(date -u -d '-1 day' +%Y%m%d%H%M%S)" -e "$(date -u -d '+30 days' +%Y%m%d%H%M%S)" \
		-f signed.test.zone.signed signed.test.zone "$ksk" "$zsk"
	cp "$ksk.ds" signed.test.ds
)
e2e_log "signed.test: $(grep -c RRSIG "$WORK/signed.test.zone.signed") signatures; trust anchor $(awk '{print $4, $5, $6}' "$WORK/signed.test.ds")"
e2e_log "plain.test: $(grep -c local-data "$WORK/local-data.conf") local-data records"

# ---------------------------------------------------------------------------
e2e_section "resolver: unbound, DoT and plain TCP"
e2e_certs "$WORK"
DOT_PORT=$(e2e_free_port)
PLAIN_PORT=$(e2e_free_port)
cat >"$WORK/unbound.conf" <<CONF
server:
    username: ""
    chroot: ""
    directory: "$WORK"
    pidfile: ""
    use-syslog: no
    logfile: "$WORK/unbound.log"
    log-time-ascii: yes
    verbosity: 1
    num-threads: 1
    interface: 127.0.0.1@$DOT_PORT
    interface: 127.0.0.1@$PLAIN_PORT
    tls-port: $DOT_PORT
    tls-service-key: "$WORK/server.key"
    tls-service-pem: "$WORK/server.pem"
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    # subnetcache: unbound reads EDNS Client Subnet options (RFC 7871) as
    # an ECS-aware resolver does, so that the /0 options dotproxy sends
    # (DOTPROXY_CLIENT_SUBNET=hide) and the clients' own (pass) meet a real
    # implementation. It sends none on (no send-client-subnet), and echoes
    # one only in answers it builds, not in those from its cache, which the
    # corpus warms first.
    module-config: "subnetcache validator iterator"
    auto-trust-anchor-file: ""
    trust-anchor-file: "$WORK/signed.test.ds"
    trust-anchor-signaling: no
    # Nothing is ever sent anywhere: answers come from local-data and the
    # auth-zone only.
    do-not-query-address: 0.0.0.0/0
    do-not-query-address: ::/0
    # Byte-for-byte comparison: RRset order must not follow the query ID
    # (dotproxy changes it), cached TTLs must not count down between the
    # three askings, and NXDOMAINs must not be synthesised from cached NSEC
    # records differently as the cache fills.
    rrset-roundrobin: no
    serve-original-ttl: yes
    aggressive-nsec: no
    # Real-world options dotproxy must cope with: padding of TLS answers
    # (on by default) and keepalive in answers.
    pad-responses: yes
    edns-tcp-keepalive: yes
    nsid: "ascii_dotproxy-transparency"
    identity: "transparency"
    local-zone: "." static
    local-data: ". 86400 IN NS ns.$E2E_ZONE."
    local-zone: "$E2E_ZONE." static
    local-data: "$E2E_A_NAME. 300 IN A $E2E_A_ADDR"
    local-zone: "signed.test." transparent
    include: "$WORK/local-data.conf"
auth-zone:
    name: "signed.test."
    zonefile: "$WORK/signed.test.zone.signed"
    for-upstream: yes
    for-downstream: no
    fallback-enabled: no
remote-control:
    control-enable: no
CONF
unbound-checkconf "$WORK/unbound.conf" >/dev/null
unbound -d -c "$WORK/unbound.conf" >"$WORK/unbound.stderr" 2>&1 &
e2e_track $!
e2e_wait_dot 127.0.0.1 "$DOT_PORT" "$WORK/ca.pem"
e2e_log "unbound $(unbound -V | head -n 1 | awk '{print $2}'): DoT on 127.0.0.1:$DOT_PORT, plain on 127.0.0.1:$PLAIN_PORT"

# ---------------------------------------------------------------------------
e2e_section "dotproxy"
# start_proxy NAME PORT VAR=value...: dotproxy on 127.0.0.1:PORT; waits
# until it answers.
start_proxy() {
	local name=$1 port=$2 pid
	shift 2
	env DOTPROXY_LISTEN="127.0.0.1:$port" DOTPROXY_TLS_CA_FILE="$WORK/ca.pem" \
		DOTPROXY_LOG_FORMAT=text DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT=1s DOTPROXY_QUERY_TIMEOUT=2s \
		"$@" "$BIN" >"$WORK/$name.log" 2>&1 &
	pid=$!
	e2e_track "$pid"
	e2e_wait_dns 127.0.0.1 "$port" "$pid"
	e2e_log "$name: 127.0.0.1:$port $*"
}
UPSTREAM="127.0.0.1:$DOT_PORT#$E2E_ZONE"
MAIN_PORT=$(e2e_free_port)
REFUSED_PORT=$(e2e_free_port)
DEAD_PORT=$(e2e_free_port)
DEAD_UPSTREAM_PORT=$(e2e_free_port) # nothing listens there
start_proxy main "$MAIN_PORT" DOTPROXY_UPSTREAMS="$UPSTREAM"
start_proxy refused "$REFUSED_PORT" DOTPROXY_UPSTREAMS="$UPSTREAM" DOTPROXY_ALLOW=192.0.2.0/24
start_proxy dead "$DEAD_PORT" DOTPROXY_UPSTREAMS="127.0.0.1:$DEAD_UPSTREAM_PORT#$E2E_ZONE" \
	DOTPROXY_UPSTREAM_WARM_CONNS=0

# ---------------------------------------------------------------------------
e2e_section "corpus"
corpus() {
	local flags
	read -r -a flags <<<"${TRANSPARENCY_FLAGS:-}"
	"$WORK/transparency" run -timeout 2500ms "${flags[@]}" "$@" | tee -a "$WORK/corpus.out"
}
queries=$("$WORK/transparency" list | wc -l)
e2e_log "$queries queries"
e2e_check "the corpus has at least 200 queries" test "$queries" -ge 200
e2e_check "dotproxy (defaults) answers as the resolver does" \
	corpus -proxy "127.0.0.1:$MAIN_PORT" -direct "127.0.0.1:$PLAIN_PORT" \
	-refused "127.0.0.1:$REFUSED_PORT" -dead "127.0.0.1:$DEAD_PORT"

# With padding switched off the answers must be the same. The variable only
# exists once dotproxy pads (it rejects unknown DOTPROXY_ variables). -h is
# read whole first: grep -q would stop reading at the match, and under
# pipefail the SIGPIPE that dotproxy then gets would skip this run.
usage=$("$BIN" -h 2>&1)
if grep -q DOTPROXY_PADDING <<<"$usage"; then
	NOPAD_PORT=$(e2e_free_port)
	start_proxy nopad "$NOPAD_PORT" DOTPROXY_UPSTREAMS="$UPSTREAM" DOTPROXY_PADDING=off
	e2e_check "dotproxy with DOTPROXY_PADDING=off answers as the resolver does" \
		corpus -proxy "127.0.0.1:$NOPAD_PORT" -direct "127.0.0.1:$PLAIN_PORT"
else
	e2e_log "DOTPROXY_PADDING is not in dotproxy -h yet: the padding-off run is skipped"
fi

# DOTPROXY_CLIENT_SUBNET=pass forwards client subnets as they came: the
# queries that carry one must get the resolver's answers, echo and all.
PASS_PORT=$(e2e_free_port)
start_proxy pass "$PASS_PORT" DOTPROXY_UPSTREAMS="$UPSTREAM" DOTPROXY_CLIENT_SUBNET=pass
e2e_check "dotproxy with DOTPROXY_CLIENT_SUBNET=pass answers client subnet queries as the resolver does" \
	corpus -proxy "127.0.0.1:$PASS_PORT" -direct "127.0.0.1:$PLAIN_PORT" -subnet pass -only-subnet

e2e_summary
