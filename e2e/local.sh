#!/usr/bin/env bash
# local.sh: the README's local stack, run as a newcomer runs it: the root's
# docker-compose.yml brought up by deploy/local/up.sh on an engine that has
# only the base images of e2e/images.sh (no registry, no internet), then
#
#   - the README's query answered through the published port, by unbound over
#     DoT, with the certificate made on the spot;
#   - the metrics in `compose logs statsd`, as the README says to look;
#   - dotproxy turns healthy (the liveness check);
#   - up.sh again changes nothing (idempotent); down.sh removes everything it
#     made by name; up.sh after down.sh comes back with a new certificate;
#   - unbound with LOCAL_RECURSION=yes still answers the local zone with no
#     network at all (run with --network none, so nothing can leave);
#   - up.sh refuses to run over a homelab stack left in the root's project.
#
#   bash e2e/local.sh          # as root, with the engine running
#
# Its stack is named dotproxy-ci-<run>-local (LOCAL_STACK and the Compose
# project), on a free high port of 127.0.0.1, and removed by name at exit
# (down.sh --images), also on failure. Ends with "N passed, N failed".
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/lib.sh
. "$E2E_ROOT/e2e/lib.sh"
e2e_require local.sh root docker kdig go debootstrap

RUN=$(date -u +%H%M%S)-$$
export LOCAL_STACK=dotproxy-ci-$RUN-local
export COMPOSE_PROJECT_NAME=$LOCAL_STACK
export LOCAL_BIND=127.0.0.1 LOCAL_RECURSION=no
LOCAL_PORT=$(e2e_free_port)
export LOCAL_PORT
# shellcheck source=deploy/local/lib.sh
. "$E2E_ROOT/deploy/local/lib.sh"
[ "${#LOCAL_COMPOSE_BIN[@]}" -gt 0 ] || {
	echo "local.sh: neither docker-compose nor docker compose is installed" >&2
	exit 2
}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-local.XXXXXX")
EXTRA=()
on_exit() {
	local rc=$? c
	if [ "$e2e_fail" -gt 0 ] || [ "$rc" -ne 0 ]; then
		for c in "${LOCAL_CONTAINERS[@]}" "${EXTRA[@]}"; do
			docker inspect "$c" >/dev/null 2>&1 || continue
			printf '\n--- last lines of docker logs %s ---\n' "$c"
			docker logs --tail 25 "$c" 2>&1
		done
	fi
	for c in "${EXTRA[@]}"; do docker rm -f -v "$c" >/dev/null 2>&1 || true; done
	timeout -k 10 120 bash "$E2E_ROOT/deploy/local/down.sh" --images >/dev/null 2>&1 || true
	rm -rf "$WORK"
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

TXT='"answered by unbound over DNS-over-TLS, through dotproxy"'
ask() { kdig @127.0.0.1 -p "$LOCAL_PORT" +time=5 +retry=0 "$@" 2>&1; }

# up LOG LIMIT: runs deploy/local/up.sh as the README does, its output in
# LOG, stopped after LIMIT seconds (the builds fetch Debian packages and Go
# modules, which could hang).
up() {
	local t0 rc=0
	t0=$(date +%s.%N)
	timeout -k 10 "$2" bash "$E2E_ROOT/deploy/local/up.sh" >"$WORK/$1" 2>&1 || rc=$?
	UP_SECONDS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
	if [ "$rc" -ne 0 ]; then
		tail -n 40 "$WORK/$1"
		return 1
	fi
	grep -F -q "$TXT" "$WORK/$1"
}

# ---------------------------------------------------------------------------
e2e_section "deploy/local/up.sh on an engine with only the base images"
e2e_check "base images made (e2e/images.sh)" timeout -k 10 1800 bash "$E2E_ROOT/e2e/images.sh"
e2e_check "up.sh builds the stack, starts it and gets the first answer" up up1.log 1500
figure "up.sh, the stack's images not yet built: ${UP_SECONDS} s to the first answer ($(grep -o 'first answer [0-9.]* s' "$WORK/up1.log" || true))"
sed -n '/is up:/,$p' "$WORK/up1.log" | sed 's/^/    up.sh: /'

txt_udp() { [ "$(ask +short hello.dotproxy.test TXT)" = "$TXT" ]; }
a_tcp() { [ "$(ask +tcp +short hello.dotproxy.test A)" = 192.0.2.53 ]; }
refused() {
	local out
	out=$(ask example.com A)
	e2e_log "example.com: $(grep -o 'status: [A-Z]*' <<<"$out")"
	grep -q 'status: REFUSED' <<<"$out"
}
e2e_check "the README's query over UDP: hello.dotproxy.test TXT" txt_udp
e2e_check "A over TCP" a_tcp
e2e_check "names outside dotproxy.test: REFUSED (LOCAL_RECURSION=no, nothing leaves)" refused
through_tls() {
	local dp
	dp=$(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$LOCAL_STACK-dotproxy")
	local end=$((SECONDS + 10))
	while ((SECONDS < end)); do
		docker logs "$LOCAL_STACK-unbound" 2>&1 | grep -q "info: $dp hello\.dotproxy\.test\. TXT IN" && return 0
		sleep 0.5
	done
	return 1
}
e2e_check "unbound logged the query, from dotproxy's address (unbound listens on 853 only)" through_tls
cert_files() {
	local key ls
	key=$(docker exec "$LOCAL_STACK-unbound" stat -c '%a %U' /tls/server.key)
	ls=$(docker exec "$LOCAL_STACK-unbound" ls /tls | tr '\n' ' ')
	e2e_log "tls volume: $ls; server.key: $key"
	[ "$key" = "600 unbound" ] && [ "$ls" = "ca.pem server.key server.pem " ]
}
e2e_check "certificate made on the spot: the CA key is gone, the server key is unbound's alone" cert_files
metrics() {
	local end=$((SECONDS + 20)) logs
	while ((SECONDS < end)); do
		logs=$(cd "$E2E_ROOT" && "${LOCAL_COMPOSE_BIN[@]}" logs --no-color statsd 2>&1)
		if grep -q 'dotproxy\.query\.udp\.NOERROR\.unbound_853:[0-9]*|c' <<<"$logs" &&
			grep -q 'dotproxy\.upstream\.healthy\.unbound_853:1|g' <<<"$logs"; then
			e2e_log "$(grep -c '|' <<<"$logs") statsd lines so far, e.g. $(grep -o -m1 'dotproxy\.query\.udp\.NOERROR\.unbound_853:[0-9]*|c' <<<"$logs")"
			return 0
		fi
		sleep 1
	done
	e2e_log "received: $(head -c 600 <<<"$logs")"
	return 1
}
e2e_check "metrics in \`${LOCAL_COMPOSE_BIN[*]} logs statsd\`, run in the root as the README says" metrics
healthy() {
	local end=$((SECONDS + 60)) s
	while ((SECONDS < end)); do
		s=$(docker inspect --format '{{.State.Health.Status}}' "$LOCAL_STACK-dotproxy")
		[ "$s" = healthy ] && return 0
		sleep 0.5
	done
	e2e_log "dotproxy health: $s"
	return 1
}
e2e_check "dotproxy turns healthy (liveness check, 5 s interval)" healthy

# ---------------------------------------------------------------------------
e2e_section "idempotent: up.sh again, down.sh, up.sh after down.sh"
ids() { docker inspect --format '{{.Id}}' "${LOCAL_CONTAINERS[@]}" | tr '\n' ' '; }
BEFORE=$(ids)
e2e_check "up.sh again succeeds and answers" up up2.log 300
figure "up.sh again, everything running: ${UP_SECONDS} s"
same() { [ "$(ids)" = "$BEFORE" ]; }
e2e_check "up.sh again recreated no container" same
e2e_check "down.sh" timeout -k 10 120 bash "$E2E_ROOT/deploy/local/down.sh"
nothing_left() {
	local left
	left=$( (docker ps -a --format '{{.Names}}' && docker network ls --format '{{.Name}}' &&
		docker volume ls --format '{{.Name}}') | grep -x -e "$LOCAL_STACK" -e "$LOCAL_STACK-.*" || true)
	[ -z "$left" ] || e2e_log "left: $left"
	[ -z "$left" ] && docker image inspect "${LOCAL_IMAGES[@]}" >/dev/null
}
e2e_check "down.sh left no container, network or volume named $LOCAL_STACK, and kept the images" nothing_left
e2e_check "up.sh after down.sh (images kept, a new certificate)" up up3.log 300
figure "up.sh after down.sh, images built: ${UP_SECONDS} s to the first answer"
e2e_check "the README's query again" txt_udp

# ---------------------------------------------------------------------------
e2e_section "unbound with LOCAL_RECURSION=yes, with no network at all"
REC=$LOCAL_STACK-recursion
EXTRA+=("$REC")
docker run -d --name "$REC" --network none -e LOCAL_RECURSION=yes "$LOCAL_STACK/unbound:bookworm" >/dev/null
rdig() { docker exec "$REC" dig +tls @127.0.0.1 -p 853 +time=10 +tries=1 "$@" 2>&1; }
rec_local() {
	local end=$((SECONDS + 20))
	while ((SECONDS < end)); do
		[ "$(rdig +short hello.dotproxy.test TXT)" = "$TXT" ] && return 0
		sleep 0.5
	done
	return 1
}
e2e_check "the local zone is answered over DoT (validator and iterator loaded)" rec_local
rec_other() {
	local out
	out=$(rdig example.com A)
	e2e_log "example.com with recursion and no network: $(grep -o 'status: [A-Z]*' <<<"$out" || echo "no answer")"
	grep -q 'status: SERVFAIL' <<<"$out"
}
e2e_check "another name: SERVFAIL, as it cannot reach the root servers" rec_other
bad_mode() {
	local out rc=0
	out=$(timeout -k 5 60 docker run --rm --network none -e LOCAL_RECURSION=maybe "$LOCAL_STACK/unbound:bookworm" 2>&1) || rc=$?
	e2e_log "LOCAL_RECURSION=maybe: exit $rc, $(tail -n 1 <<<"$out")"
	[ "$rc" -eq 2 ] && grep -q 'LOCAL_RECURSION="maybe"' <<<"$out"
}
e2e_check "LOCAL_RECURSION=maybe stops unbound's start with exit 2 and one line" bad_mode
docker rm -f -v "$REC" >/dev/null

# ---------------------------------------------------------------------------
e2e_section "up.sh does not replace a homelab stack left in the root's project"
OLD=$LOCAL_STACK-oldhomelab
EXTRA+=("$OLD")
docker create --name "$OLD" --label "com.docker.compose.project.working_dir=$E2E_ROOT" \
	--label com.docker.compose.service=graphite "$LOCAL_STACK/statsd:bookworm" >/dev/null
BEFORE=$(ids)
refuses() {
	local rc=0
	timeout -k 10 120 bash "$E2E_ROOT/deploy/local/up.sh" >"$WORK/up4.log" 2>&1 || rc=$?
	e2e_log "$(tail -n 1 "$WORK/up4.log" | cut -c1-160)"
	[ "$rc" -ne 0 ] && grep -q 'homelab' "$WORK/up4.log" && [ "$(ids)" = "$BEFORE" ]
}
e2e_check "up.sh stops, says why, and touches nothing" refuses
docker rm -f "$OLD" >/dev/null

# ---------------------------------------------------------------------------
e2e_section "down.sh --images"
e2e_check "down.sh --images" timeout -k 10 120 bash "$E2E_ROOT/deploy/local/down.sh" --images
images_gone() { ! docker image inspect "${LOCAL_IMAGES[0]}" >/dev/null 2>&1 && ! docker image inspect "${LOCAL_IMAGES[1]}" >/dev/null 2>&1 && ! docker image inspect "${LOCAL_IMAGES[2]}" >/dev/null 2>&1; }
e2e_check "the stack's three images are gone" images_gone

e2e_summary
