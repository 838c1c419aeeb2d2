#!/usr/bin/env bash
# compose.sh: the homelab stack (deploy/homelab/docker-compose.yml) brought
# up for real, with deploy/homelab/ci.yml on top for what cannot be pulled
# here (two unbound DoT upstreams named by host name, a statsd stand-in for
# graphite-statsd, Grafana left out), then failover across those containers:
#
#   - queries answered through the published port (127.0.0.1, a high port);
#   - metrics reach the receiver over the compose network by service name;
#   - `stop` of one upstream: no query sent after the failover window (1 s)
#     is lost; `start` brings it back into rotation;
#   - `docker network disconnect` of an upstream (a silent cut): routed
#     around within the attempt timeout;
#   - an upstream named by host name is re-resolved when its container is
#     recreated at a new address;
#   - DOTPROXY_BOOTSTRAP where the container's resolver is dotproxy itself.
#
#   bash e2e/compose.sh          # as root, with the engine running
#
# The project, its containers, network and volumes are named
# dotproxy-ci-<run>* and removed by name at exit, also on failure. Queries
# come from kdig on the host; the counts are printed as "figure:" lines.
# Needs: docker, docker-compose (v1, Debian's) or docker compose, kdig,
# openssl, jq, and what e2e/images.sh needs. Ends with "N passed, N failed".
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/docker-lib.sh
. "$E2E_ROOT/e2e/docker-lib.sh"

e2e_require compose.sh root docker kdig openssl jq go debootstrap
if command -v docker-compose >/dev/null; then
	COMPOSE_BIN=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
	COMPOSE_BIN=(docker compose)
else
	echo "compose.sh: neither docker-compose nor docker compose is installed" >&2
	exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-compose.XXXXXX")
chmod 0755 "$WORK"
PROJECT=$DK_PREFIX
# The project directory is the first file's, as for a user who runs
# `docker compose up` in deploy/homelab.
COMPOSE=("${COMPOSE_BIN[@]}" -p "$PROJECT"
	-f "$E2E_ROOT/deploy/homelab/docker-compose.yml" -f "$E2E_ROOT/deploy/homelab/ci.yml")
NET=${PROJECT}_default
# Compose v1 names containers PROJECT_SERVICE_1; v2 PROJECT-SERVICE-1.
cname() {
	local id
	id=$("${COMPOSE[@]}" ps -q "$1" 2>/dev/null | head -n 1)
	[ -n "$id" ] && docker inspect --format '{{.Name}}' "$id" | sed 's,^/,,'
}
SERVICES=(dotproxy graphite upstream1 upstream2)
on_exit() {
	local rc=$? s names=()
	for s in "${SERVICES[@]}"; do names+=("$(cname "$s" || true)"); done
	if [ "$e2e_fail" -gt 0 ] || [ "$rc" -ne 0 ]; then dk_dump "${names[@]}" "${dk_containers[@]}"; fi
	"${COMPOSE[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
	# By name as well, in case compose itself failed half-way.
	for s in "${SERVICES[@]}" grafana; do
		docker rm -f -v "${PROJECT}_${s}_1" "${PROJECT}-${s}-1" >/dev/null 2>&1 || true
	done
	dk_cleanup
	docker network rm "$NET" >/dev/null 2>&1 || true
	docker volume rm "${PROJECT}_graphite-data" "${PROJECT}_grafana-data" >/dev/null 2>&1 || true
	rm -rf "$WORK"
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------
e2e_section "images"
e2e_check "base images made and the Dockerfile builds" dk_image
images_have "$DK_IMAGE" || {
	e2e_summary
	exit 1
}

# A /24 for the compose network that no other network here uses; the
# upstreams sit at .201 and .202, outside the range Docker hands out (.0/25).
pick_subnet() {
	local used i a b
	used=$( (docker network ls -q | xargs -r docker network inspect --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}'; ip -4 route) 2>/dev/null)
	for ((i = 0; i < 50; i++)); do
		a=$((200 + RANDOM % 50))
		b=$((RANDOM % 256))
		if ! grep -q "10\.$a\.$b\." <<<"$used" && ! grep -q "10\.$a\.0\.0/16" <<<"$used"; then
			echo "10.$a.$b"
			return 0
		fi
	done
	return 1
}
NETPFX=$(pick_subnet)
UP1_IP=$NETPFX.201
UP2_IP=$NETPFX.202
UP1_NEW_IP=$NETPFX.211
PORT=$(e2e_free_port)
export DOTPROXY_TAG=$DK_TAG DOTPROXY_BIND=127.0.0.1 DOTPROXY_PORT=$PORT
GRAPHITE_WEB_PORT=$(e2e_free_port)
export GRAPHITE_WEB_PORT
export CI_DIR=$WORK CI_SUBNET=$NETPFX.0/24 CI_IP_RANGE=$NETPFX.0/25
export CI_UPSTREAM1_IP=$UP1_IP CI_UPSTREAM2_IP=$UP2_IP

# The upstreams' certificate names them as dotproxy does: by service name.
dk_certs "$WORK" DNS:upstream1 DNS:upstream2 DNS:dot.bootstrap.test >/dev/null
# Both also answer plain DNS on 53: the bootstrap check below finds
# dot.bootstrap.test (upstream2's address) through upstream1.
dk_unbound_dir "$WORK/upstream1" upstream1 "$WORK" "dot.bootstrap.test. 60 IN A $UP2_IP"
dk_unbound_dir "$WORK/upstream2" upstream2 "$WORK" "dot.bootstrap.test. 60 IN A $UP2_IP"

# ---------------------------------------------------------------------------
e2e_section "docker compose up"
UP_START=$(date +%s.%N)
compose_up() { "${COMPOSE[@]}" up -d --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; return 1; }; }
e2e_check "compose up -d (dotproxy, graphite stand-in, upstream1, upstream2)" compose_up
DP=$(cname dotproxy || true)
services_running() {
	local running
	running=$("${COMPOSE[@]}" ps --services --filter status=running 2>/dev/null | sort | tr '\n' ' ')
	e2e_log "running: $running"
	[ "$running" = "dotproxy graphite upstream1 upstream2 " ]
}
e2e_check "the four services run; grafana (profile) does not" services_running
e2e_check "dotproxy answers on 127.0.0.1:$PORT" dk_wait_answer "$PORT" 30
figure "compose up to first answer: $(awk -v a="$UP_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"

who() { kdig @127.0.0.1 -p "$PORT" +time=5 +retry=0 "who.$E2E_ZONE" TXT +short 2>/dev/null | tr -d '"'; }
a_udp() { [ "$(dk_kdig @127.0.0.1 -p "$PORT" "$E2E_A_NAME" A +short)" = "$E2E_A_ADDR" ]; }
a_tcp() { [ "$(dk_kdig @127.0.0.1 -p "$PORT" +tcp "$E2E_A_NAME" A +short)" = "$E2E_A_ADDR" ]; }
e2e_check "A over UDP" a_udp
e2e_check "A over TCP" a_tcp
both_upstreams() {
	local i out c1=0 c2=0
	for ((i = 0; i < 40; i++)); do
		out=$(who)
		case $out in upstream1) c1=$((c1 + 1)) ;; upstream2) c2=$((c2 + 1)) ;; esac
	done
	figure "40 queries by host-name upstreams: upstream1 answered $c1, upstream2 $c2"
	[ "$c1" -gt 0 ] && [ "$c2" -gt 0 ] && [ $((c1 + c2)) -eq 40 ]
}
e2e_check "both upstreams (named upstream1:853, upstream2:853) answer" both_upstreams
e2e_check "dotproxy turns healthy (compose health check)" dk_wait_healthy "$DP" 90
figure "compose up to healthy: $(awk -v a="$UP_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
"${COMPOSE[@]}" ps 2>/dev/null | sed 's/^/    ps: /' || true

metrics_arrive() {
	local end=$((SECONDS + 20)) logs
	while ((SECONDS < end)); do
		logs=$(docker logs "$(cname graphite)" 2>&1)
		if grep -q '^dotproxy\.query\.udp\.NOERROR\.upstream[12]_853:[0-9]*|c' <<<"$logs" &&
			grep -q '^dotproxy\.upstream\.healthy\.upstream1_853:1|g' <<<"$logs"; then
			e2e_log "$(grep -c . <<<"$logs") statsd lines so far, e.g. $(grep -m1 '^dotproxy\.query\.udp\.NOERROR' <<<"$logs")"
			return 0
		fi
		sleep 1
	done
	e2e_log "received: $(head -c 600 <<<"$logs")"
	return 1
}
e2e_check "metrics reach the receiver at graphite:8125 (service name, compose network)" metrics_arrive

# ---------------------------------------------------------------------------
# load NAME COUNT INTERVAL: COUNT UDP queries for who.dns.test TXT, one every
# INTERVAL seconds, each its own kdig in the background (so a slow answer
# does not hold the next query back). Each writes one line to
# $WORK/NAME/<i>: send time (ms), latency (ms), rcode or TIMEOUT, who answered.
load() {
	local name=$1 count=$2 interval=$3 i
	mkdir -p "$WORK/$name"
	for ((i = 0; i < count; i++)); do
		(
			t0=$(now_ms)
			out=$(kdig @127.0.0.1 -p "$PORT" +time=6 +retry=0 "who.$E2E_ZONE" TXT 2>&1 || true)
			t1=$(now_ms)
			st=$(sed -n 's/.*status: \([A-Z]*\).*/\1/p' <<<"$out" | head -n 1)
			ans=$(grep -o '"upstream[12]"' <<<"$out" | tr -d '"' | head -n 1)
			echo "$t0 $((t1 - t0)) ${st:-TIMEOUT} ${ans:-none}" >"$WORK/$name/$i"
		) &
		sleep "$interval"
	done
	wait
}
# tally NAME EVENT_MS WINDOW_MS: prints "before during after failed_after
# failed_all max_after_ms max_all_ms" for queries sent before EVENT, in
# [EVENT, EVENT+WINDOW) and after, with failures (not NOERROR from an upstream)
# and the largest latencies.
tally() {
	cat "$WORK/$1"/* | awk -v e="$2" -v w="$3" '
		{ bad = ($3 != "NOERROR" || $4 == "none") }
		$1 < e { b++ }
		$1 >= e && $1 < e + w { d++ }
		$1 >= e + w { a++; fa += bad; if ($2 > ma) ma = $2 }
		{ f += bad; if ($2 > m) m = $2 }
		END { printf "%d %d %d %d %d %d %d\n", b, d, a, fa, f, ma, m }'
}
# answered_by NAME FROM_MS UPSTREAM: how many queries sent after FROM_MS were
# answered by UPSTREAM.
answered_by() { cat "$WORK/$1"/* | awk -v f="$2" -v u="$3" '$1 >= f && $4 == u { n++ } END { print n + 0 }'; }

# ---------------------------------------------------------------------------
e2e_section "docker compose stop / start of one upstream"
# 20 queries a second for 14 s; upstream1 stops 4 s in.
load stop 280 0.05 &
LOAD_PID=$!
sleep 4
UP1=$(cname upstream1)
CMD_MS=$(now_ms)
"${COMPOSE[@]}" stop -t 10 upstream1 >/dev/null 2>&1
CMD_DONE_MS=$(now_ms)
wait "$LOAD_PID"
# The window starts when unbound actually exited, not when the command began.
STOP_MS=$(date -d "$(docker inspect --format '{{.State.FinishedAt}}' "$UP1")" +%s%3N)
read -r b d a fa f ma m < <(tally stop "$STOP_MS" 1000)
figure "stop: compose stop upstream1 returned after $((CMD_DONE_MS - CMD_MS)) ms, unbound exited $((STOP_MS - CMD_MS)) ms after the command; queries sent before the exit $b, in the second after it $d, later $a; lost later $fa of $a; lost in all $f of $((b + d + a)); slowest later ${ma} ms, slowest of all ${m} ms; answered by upstream1 later: $(answered_by stop $((STOP_MS + 1000)) upstream1)"
no_loss_after_window() { [ "$a" -gt 0 ] && [ "$fa" -eq 0 ]; }
e2e_check "compose stop upstream1: no query sent after the 1 s failover window is lost" no_loss_after_window
START_MS=$(now_ms)
"${COMPOSE[@]}" start upstream1 >/dev/null 2>&1
back_in_rotation() {
	local end=$((SECONDS + 30))
	while ((SECONDS < end)); do
		if [ "$(who)" = upstream1 ]; then
			figure "start: upstream1 answered again $(($(now_ms) - START_MS)) ms after compose start (probe backoff at most DOTPROXY_PROBE_MAX_BACKOFF, 10 s)"
			return 0
		fi
		sleep 0.1
	done
	return 1
}
e2e_check "compose start upstream1: back in rotation" back_in_rotation
# health_changes waits, up to 10 s, for both counts to reach the receiver:
# the "up" is counted as upstream1 comes back, but sent only at dotproxy's
# next metrics flush, which may come after the answer that showed it back.
health_changes() {
	local logs end=$((SECONDS + 10))
	while ((SECONDS < end)); do
		logs=$(docker logs "$(cname graphite)" 2>&1)
		if grep -q '^dotproxy\.upstream\.health_change\.upstream1_853\.down:[0-9]*|c' <<<"$logs" &&
			grep -q '^dotproxy\.upstream\.health_change\.upstream1_853\.up:[0-9]*|c' <<<"$logs"; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}
e2e_check "metrics: upstream1 went down and came up (health_change)" health_changes

# ---------------------------------------------------------------------------
e2e_section "docker network disconnect of an upstream (a silent cut)"
UP2=$(cname upstream2)
ATTEMPT_MS=1500
load cut 280 0.05 &
LOAD_PID=$!
sleep 4
CUT_MS=$(now_ms)
docker network disconnect "$NET" "$UP2"
wait "$LOAD_PID"
read -r b d a fa f ma m < <(tally cut "$CUT_MS" "$ATTEMPT_MS")
figure "cut: queries before it $b, within the attempt timeout (1.5 s) after it $d, later $a; lost within the timeout $((f - fa)), lost later $fa; slowest within ${m} ms, slowest later ${ma} ms; answered by upstream2 after the timeout: $(answered_by cut $((CUT_MS + ATTEMPT_MS)) upstream2)"
routed_around() { [ "$a" -gt 0 ] && [ "$f" -eq 0 ]; }
e2e_check "no query lost across the silent cut" routed_around
fast_after() { [ "$ma" -lt "$ATTEMPT_MS" ] && [ "$(answered_by cut $((CUT_MS + ATTEMPT_MS)) upstream2)" -eq 0 ]; }
e2e_check "after the attempt timeout every query goes to upstream1, each in under 1.5 s" fast_after
RECONNECT_MS=$(now_ms)
docker network connect --ip "$UP2_IP" --alias upstream2 "$NET" "$UP2"
back2() {
	local end=$((SECONDS + 30))
	while ((SECONDS < end)); do
		if [ "$(who)" = upstream2 ]; then
			figure "reconnect: upstream2 answered again $(($(now_ms) - RECONNECT_MS)) ms after docker network connect"
			return 0
		fi
		sleep 0.1
	done
	return 1
}
e2e_check "network connect: upstream2 back in rotation" back2

# ---------------------------------------------------------------------------
e2e_section "upstream by host name: re-resolved when its address changes"
OLD_ID=$("${COMPOSE[@]}" ps -q upstream1)
RECREATE_MS=$(now_ms)
recreate() {
	CI_UPSTREAM1_IP=$UP1_NEW_IP "${COMPOSE[@]}" up -d --no-build --no-deps upstream1 >"$WORK/recreate.log" 2>&1 || {
		cat "$WORK/recreate.log"
		return 1
	}
	local id
	id=$("${COMPOSE[@]}" ps -q upstream1)
	e2e_log "upstream1: container ${OLD_ID:0:12} at $UP1_IP replaced by ${id:0:12} at $(dk_ip "$id")"
	[ "$id" != "$OLD_ID" ] && [ "$(dk_ip "$id")" = "$UP1_NEW_IP" ]
}
e2e_check "compose up recreates upstream1 at $UP1_NEW_IP (was $UP1_IP)" recreate
new_address_used() {
	local end=$((SECONDS + 30)) dp_ip
	dp_ip=$(dk_ip "$DP")
	while ((SECONDS < end)); do
		if [ "$(who)" = upstream1 ]; then
			figure "re-resolution: the recreated upstream1 answered $(($(now_ms) - RECREATE_MS)) ms after compose up"
			# Its own log: the queries came from dotproxy, to the new address.
			dk_log_has "$(cname upstream1)" "info: $dp_ip who\.$E2E_ZONE\. TXT IN"
			return
		fi
		sleep 0.1
	done
	return 1
}
e2e_check "dotproxy reaches upstream1 at its new address (looked up again at dial time)" new_address_used

# ---------------------------------------------------------------------------
e2e_section "bootstrap loop: the container's resolver is dotproxy itself"
# --dns 127.0.0.1: Docker's embedded DNS (127.0.0.11) answers container
# names and forwards every other name to the container's own loopback,
# where dotproxy listens: the homelab case of a host whose resolver is
# dotproxy. dot.bootstrap.test is known only to the upstreams' plain DNS.
boot_run() {
	local name=$1 port=$2
	shift 2
	dk_track_container "$name"
	docker run -d --name "$name" --network "$NET" --dns 127.0.0.1 \
		-p "127.0.0.1:$port:53/udp" -p "127.0.0.1:$port:53/tcp" \
		-v "$WORK/ca.pem:/etc/dotproxy/ca.pem:ro" \
		-e DOTPROXY_UPSTREAMS=dot.bootstrap.test:853 \
		-e DOTPROXY_TLS_CA_FILE=/etc/dotproxy/ca.pem \
		"$@" "$DK_IMAGE" >/dev/null 2>"$WORK/$name.run.err" || {
		cat "$WORK/$name.run.err" >&2
		return 1
	}
}
LOOP=$(dk_name loop)
LPORT=$(e2e_free_port)
boot_run "$LOOP" "$LPORT"
loop_servfail() {
	local t0 out rc
	dk_wait_dns_any "$LPORT" || return 1
	t0=$(now_ms)
	out=$(dk_kdig @127.0.0.1 -p "$LPORT" +time=8 "$E2E_A_NAME" A)
	rc=$(sed -n 's/.*status: \([A-Z]*\).*/\1/p' <<<"$out" | head -n 1)
	figure "loop, no bootstrap: $rc after $(($(now_ms) - t0)) ms"
	[ "$rc" = SERVFAIL ]
}
# dk_wait_dns_any PORT: waits up to 20 s for any reply on 127.0.0.1:PORT.
dk_wait_dns_any() {
	local end=$((SECONDS + 20))
	while ((SECONDS < end)); do
		kdig @127.0.0.1 -p "$1" +time=6 +retry=0 . NS 2>/dev/null | grep -q 'status: ' && return 0
		sleep 0.2
	done
	return 1
}
e2e_check "without DOTPROXY_BOOTSTRAP the upstream name cannot be found: SERVFAIL" loop_servfail
loop_logged() {
	local logs
	logs=$(docker logs "$LOOP" 2>&1)
	e2e_log "$(grep -m1 'cannot connect' <<<"$logs" | cut -c1-300)"
	grep -q 'dot.bootstrap.test' <<<"$logs"
}
e2e_check "its log names the upstream it cannot reach" loop_logged
BOOT=$(dk_name bootstrap)
BPORT=$(e2e_free_port)
UP1_NOW=$(dk_ip "$(cname upstream1)")
boot_run "$BOOT" "$BPORT" -e DOTPROXY_BOOTSTRAP="$UP1_NOW"
bootstrap_answers() {
	dk_wait_answer "$BPORT" 20 &&
		[ "$(kdig @127.0.0.1 -p "$BPORT" +time=5 +retry=0 "who.$E2E_ZONE" TXT +short | tr -d '"')" = upstream2 ]
}
e2e_check "with DOTPROXY_BOOTSTRAP=$UP1_NOW (plain DNS) it answers, through upstream2" bootstrap_answers
bootstrap_asked() {
	dk_log_has "$(cname upstream1)" "info: $(dk_ip "$BOOT") dot\.bootstrap\.test\. A IN"
}
e2e_check "the bootstrap resolver was asked for the upstream's name" bootstrap_asked

# ---------------------------------------------------------------------------
e2e_section "docker compose stop"
compose_stop() {
	local t0
	t0=$(now_ms)
	"${COMPOSE[@]}" stop -t 10 dotproxy >/dev/null 2>&1
	figure "compose stop dotproxy: $(($(now_ms) - t0)) ms"
	[ "$(docker inspect --format '{{.State.ExitCode}}' "$DP")" = 0 ]
}
e2e_check "compose stop dotproxy: exit 0" compose_stop

e2e_summary
