#!/usr/bin/env bash
# shellcheck disable=SC2034 # the names are read by up.sh and down.sh
# lib.sh: what deploy/local/up.sh and down.sh share. Sourced, not run.
#
# The local stack is the repository root's docker-compose.yml. Compose runs
# with the root as project directory, as `docker compose` typed in the root
# does, so `docker compose logs -f statsd` there sees the same stack; its
# project name is Compose's own (the directory's name, or
# COMPOSE_PROJECT_NAME). Every container, the network, the volume and the
# stack's images are named by LOCAL_STACK (default dotproxy-local), which
# both scripts read as Compose does: the environment first, then the root's
# .env file.

LOCAL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL_FILE=$LOCAL_ROOT/docker-compose.yml

# local_setting NAME DEFAULT: NAME's value from the environment, else from
# the last NAME= line of the root's .env (quotes stripped), else DEFAULT.
local_setting() {
	local name=$1 default=$2 v
	if [ -n "${!name:-}" ]; then
		printf '%s\n' "${!name}"
		return 0
	fi
	if [ -r "$LOCAL_ROOT/.env" ]; then
		v=$(sed -n "s/^[[:space:]]*${name}[[:space:]]*=[[:space:]]*//p" "$LOCAL_ROOT/.env" | tail -n 1 | sed -e 's/[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/")
		if [ -n "$v" ]; then
			printf '%s\n' "$v"
			return 0
		fi
	fi
	printf '%s\n' "$default"
}

LOCAL_STACK=$(local_setting LOCAL_STACK dotproxy-local)
export LOCAL_STACK
LOCAL_CONTAINERS=("$LOCAL_STACK-dotproxy" "$LOCAL_STACK-unbound" "$LOCAL_STACK-statsd")
LOCAL_NETWORK=$LOCAL_STACK
LOCAL_VOLUME=$LOCAL_STACK-tls
LOCAL_IMAGES=("$LOCAL_STACK/dotproxy:dev" "$LOCAL_STACK/unbound:bookworm" "$LOCAL_STACK/statsd:bookworm")

# The Compose tool: LOCAL_COMPOSE if set (e.g. "docker-compose"), else
# Compose v2 (`docker compose`) where the CLI has it, else docker-compose.
if [ -n "${LOCAL_COMPOSE:-}" ]; then
	read -r -a LOCAL_COMPOSE_BIN <<<"$LOCAL_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
	LOCAL_COMPOSE_BIN=(docker compose)
elif command -v docker-compose >/dev/null; then
	LOCAL_COMPOSE_BIN=(docker-compose)
else
	LOCAL_COMPOSE_BIN=()
fi
COMPOSE=("${LOCAL_COMPOSE_BIN[@]}" --project-directory "$LOCAL_ROOT" -f "$LOCAL_FILE")

local_log() { printf 'local: %s\n' "$*" >&2; }

# local_homelab_here: true when containers of the homelab stack, started
# from the repository root before it moved to deploy/homelab, still run in
# this directory's Compose project. Their dotproxy service has the same
# name as the local stack's, so Compose would replace it (and with it the
# network's DNS): the scripts then stop and say so instead.
local_homelab_here() {
	local s
	for s in graphite grafana; do
		if [ -n "$(docker ps -aq --filter "label=com.docker.compose.project.working_dir=$LOCAL_ROOT" \
			--filter "label=com.docker.compose.service=$s")" ]; then
			return 0
		fi
	done
	return 1
}
