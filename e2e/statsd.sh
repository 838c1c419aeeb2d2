#!/usr/bin/env bash
# statsd.sh: a real statsd server for the end-to-end tests, and checks that
# dotproxy's metrics reach it. The server is collectd's statsd plugin from
# Debian's collectd-core package, writing what it receives to CSV files.
#
# Source it (". e2e/statsd.sh") and call, in order:
#
#   statsd_install           installs collectd-core with apt-get if it is
#                            missing (needs root then). Returns non-zero on
#                            failure.
#   statsd_start [PORT]      starts collectd listening on 127.0.0.1:PORT/udp
#                            (default: $STATSD_PORT, else a random high port)
#                            and waits until it listens. Sets STATSD_ADDR to
#                            the address for DOTPROXY_STATSD_ADDR, STATSD_PID
#                            and STATSD_DIR. Start dotproxy after it with
#                              DOTPROXY_STATSD_ADDR=$STATSD_ADDR
#                              DOTPROXY_STATSD_FORMAT=statsd
#                            (collectd speaks plain statsd, without tags).
#   statsd_wait GLOB...      waits until, for every GLOB, a metric whose name
#                            matches it has arrived; GLOBs are shell patterns
#                            over full names, e.g. 'dotproxy.query.udp.*'.
#                            Waits at most $STATSD_TIMEOUT seconds (default
#                            20); prints the names it has on failure.
#   statsd_check_dotproxy [PREFIX]
#                            statsd_wait for the metrics dotproxy sends once
#                            it has answered a UDP query through an upstream
#                            (PREFIX defaults to dotproxy).
#   statsd_names             prints the metric names received so far.
#   statsd_stop              stops collectd and removes STATSD_DIR. Safe to
#                            call twice, or before statsd_start.
#
# Each function returns non-zero on failure and never exits, so it fits
# e2e_check from lib.sh: e2e_check "metrics reach statsd" statsd_check_dotproxy
#
# Run directly ("bash e2e/statsd.sh selftest"), it checks itself against a
# line sent with bash's /dev/udp. Everything listens on 127.0.0.1 only.

STATSD_ADDR=
STATSD_PID=
STATSD_DIR=
STATSD_TIMEOUT=${STATSD_TIMEOUT:-20}

statsd_install() {
	if [ -x /usr/sbin/collectd ] && [ -f /usr/lib/collectd/statsd.so ] && [ -f /usr/lib/collectd/csv.so ]; then
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "statsd_install: collectd-core is missing and installing it needs root" >&2
		return 1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends collectd-core >/dev/null ||
		{ apt-get update -qq >/dev/null &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends collectd-core >/dev/null; }
}

statsd_start() {
	local port=${1:-${STATSD_PORT:-$((20000 + RANDOM % 40000))}} i
	STATSD_DIR=$(mktemp -d /tmp/dotproxy-statsd.XXXXXX) || return 1
	cat >"$STATSD_DIR/collectd.conf" <<CONF
Hostname "e2e"
FQDNLookup false
BaseDir "$STATSD_DIR"
PIDFile "$STATSD_DIR/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File STDOUT
</Plugin>
LoadPlugin statsd
<Plugin statsd>
  Host "127.0.0.1"
  Port "$port"
  TimerCount true
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$STATSD_DIR/csv"
</Plugin>
CONF
	/usr/sbin/collectd -f -C "$STATSD_DIR/collectd.conf" >"$STATSD_DIR/collectd.log" 2>&1 &
	STATSD_PID=$!
	for ((i = 0; i < 100; i++)); do
		if grep -q "statsd plugin: Listening on" "$STATSD_DIR/collectd.log" 2>/dev/null; then
			STATSD_ADDR=127.0.0.1:$port
			return 0
		fi
		kill -0 "$STATSD_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "statsd_start: collectd did not start listening on 127.0.0.1:$port:" >&2
	cat "$STATSD_DIR/collectd.log" >&2
	statsd_stop
	return 1
}

# statsd_names prints the metric names that collectd wrote, one a line. Its
# CSV files are named TYPE-NAME[-STAT]-YYYY-MM-DD, STAT being a timer's
# statistic (average, count, ...).
statsd_names() {
	[ -d "$STATSD_DIR/csv" ] || return 0
	find "$STATSD_DIR/csv" -type f -printf '%f\n' |
		sed -E 's/^(derive|gauge|latency|objects|count)-//; s/-[0-9]{4}-[0-9]{2}-[0-9]{2}$//; s/-(average|count|sum|lower|upper|percentile-[0-9.]+)$//' |
		sort -u
}

statsd_wait() {
	local deadline=$((SECONDS + STATSD_TIMEOUT)) names glob name found missing
	while :; do
		names=$(statsd_names)
		missing=()
		for glob in "$@"; do
			found=
			while IFS= read -r name; do
				# shellcheck disable=SC2053 # glob match intended
				if [[ $name == $glob ]]; then
					found=1
					break
				fi
			done <<<"$names"
			[ -n "$found" ] || missing+=("$glob")
		done
		[ ${#missing[@]} -eq 0 ] && return 0
		if ((SECONDS >= deadline)); then
			echo "statsd_wait: no metric matching: ${missing[*]}" >&2
			echo "statsd_wait: metrics received:" >&2
			while IFS= read -r name; do echo "  $name"; done <<<"$names" >&2
			return 1
		fi
		sleep 0.5
	done
}

statsd_check_dotproxy() {
	local p=${1:-dotproxy}
	statsd_wait \
		"$p.query.udp.NOERROR.*" \
		"$p.query.rtt.udp.*" \
		"$p.query.request_size.udp" \
		"$p.query.response_size.udp" \
		"$p.upstream.latency.*" \
		"$p.upstream.cx_open.*" \
		"$p.upstream.handshake.*" \
		"$p.upstream.healthy.*"
}

statsd_stop() {
	local i
	if [ -n "$STATSD_PID" ] && kill -0 "$STATSD_PID" 2>/dev/null; then
		kill -TERM "$STATSD_PID" 2>/dev/null
		for ((i = 0; i < 50; i++)); do
			kill -0 "$STATSD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$STATSD_PID" 2>/dev/null
		wait "$STATSD_PID" 2>/dev/null
	fi
	STATSD_PID=
	if [ -n "$STATSD_DIR" ] && [[ $STATSD_DIR == /tmp/dotproxy-statsd.* ]]; then
		rm -rf "$STATSD_DIR"
	fi
	STATSD_DIR=
	STATSD_ADDR=
	return 0
}

# statsd_selftest sends plain statsd lines of each type and checks they
# arrive under the names statsd_names reports.
statsd_selftest() {
	local pass=0 fail=0
	statsd_install || return 1
	statsd_start "" || return 1
	printf 'selftest.count.udp:3|c\nselftest.rtt.udp:12.5|ms\nselftest.gauge:1|g' >"/dev/udp/${STATSD_ADDR%:*}/${STATSD_ADDR#*:}"
	if statsd_wait selftest.count.udp 'selftest.rtt.*' selftest.gauge; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
	fi
	# A name never sent must make statsd_wait fail.
	if STATSD_TIMEOUT=1 statsd_wait never.sent 2>/dev/null; then
		fail=$((fail + 1))
	else
		pass=$((pass + 1))
	fi
	statsd_stop
	echo "selftest: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case ${1:-} in
	selftest) statsd_selftest ;;
	*)
		echo "usage: bash $0 selftest   (or source it; see the comment at its top)" >&2
		exit 2
		;;
	esac
fi
