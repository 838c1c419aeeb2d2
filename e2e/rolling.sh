#!/usr/bin/env bash
# rolling.sh: a rolling restart loses no query. Two dotproxy containers,
# built from the repository's Dockerfile, serve one unbound upstream; a
# small balancer of this repository's own (e2e/rolling) sends a steady
# stream of queries, UDP and TCP, each to a replica that reported ready at
# its last poll (`docker exec NAME /dotproxy healthcheck -ready` every
# 250 ms, as an orchestrator's probe does). One replica is restarted with
# `docker stop` (a real SIGTERM) and `docker start`; every query must be
# answered. The same restart without the drain period
# (DOTPROXY_LAMEDUCK=0) is measured too, for the figure the drain period
# removes; it is not a check.
#
# Before that, the status channel in the scratch container: `docker exec
# NAME /dotproxy status` prints the table, and the same question through
# the published port, whose clients the container sees coming from the
# bridge's gateway rather than loopback, gets REFUSED.
#
#   bash e2e/rolling.sh        # as root, with the engine running
#
# Every container and the network are named dotproxy-ci-<run>-* and removed
# by name at exit, also on failure. Needs what e2e/docker.sh needs, and go.
# Ends with "N passed, N failed"; prints "figure:" lines.
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/docker-lib.sh
. "$E2E_ROOT/e2e/docker-lib.sh"

e2e_require rolling.sh root docker kdig openssl go debootstrap

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dotproxy-rolling.XXXXXX")
chmod 0755 "$WORK"
NET=$(dk_name rolling-net)
UP=$(dk_name rolling-upstream)
A=$(dk_name rolling-a)
B=$(dk_name rolling-b)
C=$(dk_name rolling-c) # B's twin without the drain period
LB_PID=
on_exit() {
	local rc=$?
	if [ -n "$LB_PID" ]; then e2e_stop "$LB_PID"; fi
	if [ "$e2e_fail" -gt 0 ] || [ "$rc" -ne 0 ]; then
		dk_dump "$UP" "$A" "$B" "$C"
		[ -s "$WORK/lb.out" ] && tail -n 40 "$WORK/lb.out"
	fi
	dk_cleanup
	rm -rf "$WORK"
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# The drain period: longer than a readiness poll and the docker exec it
# takes on a busy machine, so that the balancer has stopped sending before
# the listeners close. docker stop's 10 s grace holds it, the query
# timeout (4 s) and the exit room (1 s).
LAMEDUCK=3s

# ---------------------------------------------------------------------------
e2e_section "image and upstream"
e2e_check "base images made and the Dockerfile builds" dk_image
if [ -z "$DK_IMAGE" ] || ! images_have "$DK_IMAGE"; then
	e2e_summary
	exit 1
fi
dk_network "$NET"
dk_certs "$WORK" >/dev/null
dk_unbound_dir "$WORK/up" upstream "$WORK"
dk_track_container "$UP"
docker run -d --name "$UP" --network "$NET" -v "$WORK/up:/etc/dot:ro" "$IMAGES_UNBOUND" >/dev/null
UP_IP=$(dk_ip "$UP")
e2e_check "unbound answers DoT on $UP_IP:853" dk_wait_dot "$UP_IP" 853 "$WORK/ca.pem"

# replica NAME PORT LAMEDUCK: a dotproxy container as the README runs it,
# its port 53 published on 127.0.0.1:PORT.
replica() {
	dk_track_container "$1"
	docker run -d --name "$1" --network "$NET" \
		-p "127.0.0.1:$2:53/udp" -p "127.0.0.1:$2:53/tcp" \
		-v "$WORK/ca.pem:/etc/dotproxy/ca.pem:ro" \
		-e DOTPROXY_UPSTREAMS="$UP_IP:853#$E2E_ZONE" \
		-e DOTPROXY_TLS_CA_FILE=/etc/dotproxy/ca.pem \
		-e DOTPROXY_LAMEDUCK="$3" \
		"$DK_IMAGE" >/dev/null
}
PA=$(e2e_free_port)
PB=$(e2e_free_port)
PC=$(e2e_free_port)
replica "$A" "$PA" "$LAMEDUCK"
replica "$B" "$PB" "$LAMEDUCK"
replica "$C" "$PC" 0
e2e_check "replica A answers on 127.0.0.1:$PA" dk_wait_answer "$PA"
e2e_check "replica B answers on 127.0.0.1:$PB" dk_wait_answer "$PB"
e2e_check "replica C (no drain period) answers on 127.0.0.1:$PC" dk_wait_answer "$PC"

# ---------------------------------------------------------------------------
e2e_section "status in the scratch container"
status_in_container() {
	local out
	out=$(docker exec "$A" /dotproxy status 2>&1) || return 1
	printf '%s\n' "$out" | sed 's/^/    | /'
	grep -q '^dotproxy .*, up [0-9].*, ready$' <<<"$out" &&
		grep -Eq "^default +$UP_IP:853 +up " <<<"$out"
}
e2e_check "docker exec A /dotproxy status: the table, A ready, the upstream up" status_in_container
ready_in_container() { docker exec "$A" /dotproxy healthcheck -ready; }
e2e_check "docker exec A /dotproxy healthcheck -ready exits 0" ready_in_container
refused_from_outside() {
	local out
	out=$(dk_kdig @127.0.0.1 -p "$PA" +tcp status.dotproxy CH TXT)
	e2e_log "$(grep -E 'status:|^status' <<<"$out" | head -n 2)"
	grep -q 'status: REFUSED' <<<"$out" && ! grep -q 'dotproxy-status/' <<<"$out"
}
e2e_check "status.dotproxy CH TXT through the published port (a client at $(dk_gateway "$NET")): REFUSED" refused_from_outside

# ---------------------------------------------------------------------------
# restart NAME PORT OTHER OTHERPORT OUT: the balancer in front of NAME and
# OTHER; once it has sent 400 queries, NAME is stopped with docker stop and
# started again; once NAME is ready and has answered 200 more, the
# balancer stops. Its output goes to OUT; it returns the balancer's status.
restart() {
	local name=$1 port=$2 other=$3 oport=$4 out=$5 start stopped
	rm -f "$WORK/done"
	"$WORK/rolling" -replicas "$other=127.0.0.1:$oport,$name=127.0.0.1:$port" \
		-name "$E2E_A_NAME" -want "$E2E_A_ADDR" -until "$WORK/done" -max 150s >"$out" 2>&1 &
	LB_PID=$!
	lb_sent_at_least "$out" 400 60 || {
		lb_abort
		return 1
	}
	start=$(date +%s.%N)
	docker stop "$name" >/dev/null
	stopped=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
	figure "docker stop $name took $stopped s"
	docker start "$name" >/dev/null
	lb_answered_after_restart "$out" "$name" 200 60 || {
		lb_abort
		return 1
	}
	touch "$WORK/done"
	local rc=0
	wait "$LB_PID" || rc=$?
	LB_PID=
	grep -E 'ready|lost|wrong|summary' "$out" | sed 's/^/    | /'
	return "$rc"
}

# lb_abort: stops the balancer of a restart that went wrong.
lb_abort() {
	e2e_stop "$LB_PID"
	LB_PID=
}

# lb_sent_at_least OUT N SECONDS: waits for a progress line with sent >= N.
lb_sent_at_least() {
	local end=$((SECONDS + $3)) sent
	while ((SECONDS < end)); do
		sent=$(sed -n 's/.* progress sent=\([0-9]*\) .*/\1/p' "$1" | tail -n 1)
		[ "${sent:-0}" -ge "$2" ] && return 0
		sleep 0.5
	done
	echo "the balancer did not send $2 queries within $3 s" >&2
	return 1
}

# lb_answered_after_restart OUT NAME N SECONDS: waits until the balancer has
# seen NAME ready again and NAME has answered N more queries since.
lb_answered_after_restart() {
	local out=$1 name=$2 n=$3 end=$((SECONDS + $4)) base now
	while ((SECONDS < end)); do
		if grep -q " ready $name$" <(sed -n "/not ready $name/,\$p" "$out"); then
			break
		fi
		sleep 0.2
	done
	base=$(sed -n "s/.* progress .* $name=\([0-9]*\).*/\1/p" "$out" | tail -n 1)
	while ((SECONDS < end)); do
		now=$(sed -n "s/.* progress .* $name=\([0-9]*\).*/\1/p" "$out" | tail -n 1)
		[ "${now:-0}" -ge $((${base:-0} + n)) ] && return 0
		sleep 0.5
	done
	echo "$name did not answer $n queries after its restart within $4 s" >&2
	return 1
}

# lb_figure OUT: the summary's counts.
lb_figure() { sed -n 's/.* summary \(sent=[0-9]* answered=[0-9]* lost=[0-9]* wrong=[0-9]* unsent=[0-9]*\).*/\1/p' "$1"; }

e2e_section "rolling restart with DOTPROXY_LAMEDUCK=$LAMEDUCK"
go build -o "$WORK/rolling" "$E2E_ROOT/e2e/rolling"
e2e_check "B restarted under steady load (docker stop, docker start): no query lost" \
	restart "$B" "$PB" "$A" "$PA" "$WORK/lb.out"
figure "rolling restart with a ${LAMEDUCK} drain period: $(lb_figure "$WORK/lb.out")"
went_and_came_back() {
	grep -q "not ready $B: dotproxy: not ready: stopping" "$WORK/lb.out" &&
		grep -q " ready $B$" <(sed -n "/not ready $B/,\$p" "$WORK/lb.out")
}
e2e_check "the balancer saw B say not ready (stopping), then ready again" went_and_came_back
drain_logged() {
	local logs
	logs=$(docker logs "$B" 2>&1)
	grep -q '"msg":"not ready: draining; queries are still answered until the drain period ends".*"why":"received SIGTERM"' <<<"$logs" &&
		grep -q '"msg":"drain period over"' <<<"$logs" && grep -q '"msg":"dotproxy stopped"' <<<"$logs"
}
e2e_check "B's log: the drain period's start (SIGTERM) and end, then stopped" drain_logged
running_again() { [ "$(docker inspect --format '{{.State.Running}}' "$B")" = true ]; }
e2e_check "B is running again" running_again

e2e_section "the same restart without the drain period (measured, not checked)"
rc=0
restart "$C" "$PC" "$A" "$PA" "$WORK/lb0.out" || rc=$?
figure "rolling restart with DOTPROXY_LAMEDUCK=0: $(lb_figure "$WORK/lb0.out") (balancer exit $rc)"

e2e_summary
