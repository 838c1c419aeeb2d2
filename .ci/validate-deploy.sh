#!/usr/bin/env bash
# Validates the deployment files with real parsers and validators, and proves
# each validator is not a no-op by feeding it a broken copy that must fail.
#
#   bash .ci/validate-deploy.sh
#
# Needs: docker-compose (Debian) or `docker compose`, python3 with botocore and
# yaml (Debian: python3-botocore, python3-yaml), jq, systemd-analyze, go (for
# actionlint and hclfmt from the Go module proxy), shellcheck (used by
# actionlint on run: steps). Ends with "N passed, N failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ACTIONLINT=github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
HCLFMT=github.com/hashicorp/hcl/v2/cmd/hclfmt@v2.25.0
# The Debian python3 carries the Debian modules (botocore, yaml) even where
# another python3 comes first on PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# The PASS/FAIL counting and sections of the end-to-end scripts.
E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export E2E_ROOT
# shellcheck source=e2e/lib.sh
. "$E2E_ROOT/e2e/lib.sh"
check() { e2e_check "$@"; }
fails() { ! "$@" >/dev/null 2>&1; }
section() { e2e_section "$@"; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------------------
section "docker-compose.yml (the local stack)"
# Every Compose tool on the machine reads it the same: docker-compose 1.29
# (Debian's) and Compose v2, where the CLI has it.
COMPOSERS=()
command -v docker-compose >/dev/null && COMPOSERS+=("docker-compose")
docker compose version >/dev/null 2>&1 && COMPOSERS+=("docker compose")
[ "${#COMPOSERS[@]}" -gt 0 ] || {
	echo "neither docker-compose nor docker compose is installed" >&2
	exit 2
}
read -r -a COMPOSE <<<"${COMPOSERS[0]}"
for c in "${COMPOSERS[@]}"; do
	read -r -a tool <<<"$c"
	echo "    found: $("${tool[@]}" version 2>/dev/null | head -n 1)"
done
# compose_config TOOL FILE: `config -q` with the file's own directory as the
# project directory, as a user running the tool next to the file has it.
compose_config() {
	local -a tool
	read -r -a tool <<<"$1"
	"${tool[@]}" -f "$2" --project-directory "$(dirname "$2")" config -q
}
for c in "${COMPOSERS[@]}"; do
	check "$c config accepts docker-compose.yml" compose_config "$c" docker-compose.yml
done
local_cfg() { env -u LOCAL_STACK -u LOCAL_PORT -u LOCAL_BIND -u LOCAL_RECURSION "${COMPOSE[@]}" -f docker-compose.yml config "$@"; }
local_services() { [ "$(local_cfg --services | sort | tr '\n' ' ')" = "dotproxy statsd unbound " ]; }
check "the local stack defines dotproxy, unbound and statsd" local_services
local_wiring() {
	local cfg
	local_cfg >"$TMP/local.yml" || return 1
	cat >"$TMP/local_wiring.py" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
dp, ub, st = s["dotproxy"], s["unbound"], s["statsd"]
env = dp["environment"]
checks = {
    "upstream is unbound by name": env["DOTPROXY_UPSTREAMS"] == "unbound:853",
    "dotproxy trusts the CA from the tls volume": env["DOTPROXY_TLS_CA_FILE"] == "/etc/dotproxy/tls/ca.pem",
    "metrics go to statsd as plain lines": env["DOTPROXY_STATSD_ADDR"] == "statsd:8125" and env["DOTPROXY_STATSD_FORMAT"] == "statsd",
    "no drain period set (no load balancer)": "DOTPROXY_LAMEDUCK" not in env,
    "liveness health check": dp["healthcheck"]["test"] == ["CMD", "/dotproxy", "healthcheck"],
    "waits for unbound healthy": dp["depends_on"]["unbound"]["condition"] == "service_healthy",
    "published on 127.0.0.1:1053 only": all(str(p).startswith("127.0.0.1:1053:53/") for p in dp["ports"]) if isinstance(dp["ports"][0], str)
        else all(p["host_ip"] == "127.0.0.1" and str(p["published"]) == "1053" for p in dp["ports"]),
    "every image is built here": all("build" in v for v in s.values()),
    "every name comes from LOCAL_STACK": [v["container_name"] for v in (dp, ub, st)] == ["dotproxy-local-dotproxy", "dotproxy-local-unbound", "dotproxy-local-statsd"]
        and c["networks"]["default"]["name"] == "dotproxy-local" and c["volumes"]["tls"]["name"] == "dotproxy-local-tls",
    "unbound refuses to recurse unless asked": ub["environment"]["LOCAL_RECURSION"] == "no",
    "dotproxy is read-only, with no capability": dp["read_only"] is True and dp["cap_drop"] == ["ALL"],
}
bad = [k for k, ok in checks.items() if not ok]
for k in bad:
    print("    not so:", k)
sys.exit(1 if bad else 0)
PY
	"$PY" "$TMP/local_wiring.py" "$TMP/local.yml"
}
check "local stack: wiring, health check, names and defaults" local_wiring
local_named() {
	local cfg
	cfg=$(LOCAL_STACK=ci-x LOCAL_PORT=20053 "${COMPOSE[@]}" -f docker-compose.yml config) &&
		grep -q 'container_name: ci-x-statsd' <<<"$cfg" && grep -q 'name: ci-x-tls' <<<"$cfg" &&
		grep -q '20053' <<<"$cfg"
}
check "local stack: LOCAL_STACK and LOCAL_PORT rename and move it" local_named
sed 's/^    healthcheck:$/    healthcheck_typo:/' docker-compose.yml >"$TMP/bad-local.yml"
check "compose config rejects a broken copy of it" fails compose_config "${COMPOSERS[0]}" "$TMP/bad-local.yml"

# ---------------------------------------------------------------------------
section "deploy/homelab/docker-compose.yml"
HL=deploy/homelab
for c in "${COMPOSERS[@]}"; do
	check "$c config accepts $HL/docker-compose.yml" compose_config "$c" "$HL/docker-compose.yml"
done
# As a user runs it: in deploy/homelab, which is the project directory.
homelab() { (cd "$HL" && "${COMPOSE[@]}" "$@"); }
compose_services() {
	[ "$(homelab config --services | sort | tr '\n' ' ')" = "dotproxy grafana graphite " ]
}
check "compose defines dotproxy, graphite and grafana" compose_services
compose_wiring() {
	local cfg
	cfg=$(homelab config)
	grep -q 'DOTPROXY_STATSD_ADDR: graphite:8125' <<<"$cfg" &&
		grep -q 'DOTPROXY_STATSD_FORMAT: statsd' <<<"$cfg" &&
		grep -q "$ROOT/$HL/statsd/udp.js:/opt/statsd/config/udp.js" <<<"$cfg" &&
		grep -q "$ROOT/$HL/grafana/provisioning:/etc/grafana/provisioning" <<<"$cfg" &&
		grep -q "$ROOT/deploy/grafana/dotproxy.json:/var/lib/grafana/dashboards/dotproxy.json" <<<"$cfg" &&
		grep -q "context: $ROOT\$" <<<"$cfg" &&
		grep -q '/dotproxy' <<<"$cfg" && grep -q 'healthcheck' <<<"$cfg" &&
		grep -q 'restart: unless-stopped' <<<"$cfg"
}
check "compose wires statsd, health check, restart policy, the dashboard and the build context" compose_wiring
mounts_exist() {
	local p ok=0
	while IFS= read -r p; do
		[ -e "$p" ] || {
			echo "    missing: $p"
			ok=1
		}
	done < <(homelab config | sed -n 's/^ *- \(\/[^:]*\):.*/\1/p')
	return "$ok"
}
check "every file the homelab stack mounts exists" mounts_exist
# The CI override (deploy/homelab/ci.yml, run for real by e2e/compose.sh):
# it merges, names the upstreams by host name, and leaves Grafana out.
ci_env=(CI_DIR=/nonexistent CI_SUBNET=10.250.0.0/24 CI_IP_RANGE=10.250.0.0/25
	CI_UPSTREAM1_IP=10.250.0.201 CI_UPSTREAM2_IP=10.250.0.202 DOTPROXY_TAG=ci)
compose_ci() {
	env "${ci_env[@]}" "${COMPOSE[@]}" -f "$HL/docker-compose.yml" -f "$HL/ci.yml" "$@"
}
compose_ci_merges() {
	local cfg
	cfg=$(compose_ci config) || return 1
	[ "$(compose_ci config --services | sort | tr '\n' ' ')" = "dotproxy grafana graphite upstream1 upstream2 " ] &&
		grep -q 'DOTPROXY_UPSTREAMS: upstream1:853,upstream2:853' <<<"$cfg" &&
		grep -q 'image: dotproxy-test/statsd:bookworm' <<<"$cfg" &&
		grep -q 'ipv4_address: 10.250.0.201' <<<"$cfg" &&
		"$PY" -c 'import sys, yaml; c = yaml.safe_load(sys.stdin); sys.exit(c["services"]["grafana"].get("profiles") != ["grafana"])' <<<"$cfg"
}
check "compose: $HL/docker-compose.yml + ci.yml merge as e2e/compose.sh runs them" compose_ci_merges
compose_ci_needs_env() { ! "${COMPOSE[@]}" -f "$HL/docker-compose.yml" -f "$HL/ci.yml" config -q >/dev/null 2>&1; }
check "compose: the CI override refuses to run without its CI_* settings" compose_ci_needs_env
# Third-party images: only tags their own documentation names (none can be
# pulled here to confirm them; the compose file says so).
third_party_tags() {
	local refs
	refs=$(grep -rhoE '(image:|"image":) *"?[a-z0-9./-]+:[A-Za-z0-9._-]+' docker-compose.yml deploy | sed -E 's/.*(image:|"image":) *"?//' | grep -v -e '^ghcr.io/dotproxy/' -e '^dotproxy-test/' | sort -u | tr '\n' ' ')
	e2e_log "third-party images named: $refs"
	[ "$refs" = "gcr.io/datadoghq/agent:7 grafana/grafana:11.3.0 graphiteapp/graphite-statsd:1.1.10-5 public.ecr.aws/datadog/agent:7 " ]
}
check "compose/ECS/Nomad name only the reviewed third-party tags" third_party_tags
sed 's/^    restart: unless-stopped/    restart_policy_typo: unless-stopped/' "$HL/docker-compose.yml" >"$TMP/bad-compose.yml"
check "compose config rejects a broken copy" fails compose_config "${COMPOSERS[0]}" "$TMP/bad-compose.yml"
yaml_parses() { "$PY" -c 'import sys, yaml; [yaml.safe_load(open(f)) for f in sys.argv[1:]]' "$@"; }
check "Grafana provisioning YAML parses" yaml_parses "$HL"/grafana/provisioning/*/*.yml
statsd_config() { jq -e '.percentThreshold | index(99)' "$HL/statsd/udp.js" >/dev/null; }
check "statsd config parses and computes the 99th percentile" statsd_config

# ---------------------------------------------------------------------------
section "deploy/**/*.json"
json_parses() {
	local f ok=0
	while IFS= read -r f; do
		jq empty "$f" || {
			echo "    not JSON: $f"
			ok=1
		}
	done < <(find deploy -name '*.json' | sort)
	return "$ok"
}
check "every JSON file under deploy/ parses (jq)" json_parses

# ---------------------------------------------------------------------------
section "deploy/ecs"
cat >"$TMP/ecs_validate.py" <<'PY'
"""Validate an ECS task definition against the RegisterTaskDefinition input
shape from botocore's ECS service model (what `aws ecs register-task-definition
--cli-input-json` checks before sending)."""
import json
import sys

import botocore.session
from botocore.validate import ParamValidator

model = botocore.session.get_session().get_service_model("ecs")
shape = model.operation_model("RegisterTaskDefinition").input_shape
with open(sys.argv[1]) as f:
    params = json.load(f)
report = ParamValidator().validate(params, shape)
if report.has_errors():
    print(report.generate_report())
    sys.exit(1)
PY
ecs_valid() { "$PY" "$TMP/ecs_validate.py" "$1"; }
ECS=deploy/ecs/task-definition.json
check "ECS task definition matches botocore's RegisterTaskDefinition shape" ecs_valid "$ECS"
jq '.containerDefinitions[0].healthcheck = .containerDefinitions[0].healthCheck | .cpu = 512' "$ECS" >"$TMP/bad-ecs.json"
check "botocore rejects a broken copy" fails ecs_valid "$TMP/bad-ecs.json"
ecs_wiring() {
	jq -e '
		(.containerDefinitions | map({(.name): .}) | add) as $c
		| ($c.dotproxy.environment | map({(.name): .value}) | add) as $env
		| ($c["datadog-agent"].environment | map({(.name): .value}) | add) as $dd
		| ($env.DOTPROXY_STATSD_ADDR == "unix://" + $dd.DD_DOGSTATSD_SOCKET)
		and ([$c.dotproxy.mountPoints[].sourceVolume] == [$c["datadog-agent"].mountPoints[].sourceVolume])
		and ($c.dotproxy.healthCheck.command == ["CMD", "/dotproxy", "healthcheck"])
		and ($c.dotproxy.logConfiguration.logDriver != null)
		and ($c.dotproxy.user == "65532:65532")
		and ([$c.dotproxy.portMappings[] | "\(.containerPort)/\(.protocol)"] | sort == ["53/tcp", "53/udp"])
	' "$ECS" >/dev/null
}
check "ECS: DogStatsD over the shared socket, health check, logs, non-root on 53" ecs_wiring
# The drain (issue 17): DOTPROXY_LAMEDUCK set, and ECS's SIGKILL comes after
# dotproxy has stopped by itself (lameduck + DOTPROXY_QUERY_TIMEOUT + 1 s).
# The container health check is liveness: ECS replaces a task that fails it,
# which must not happen to every task while the upstreams are down.
ecs_drain() {
	jq -e '
		def secs: if test("^[0-9]+s$") then .[:-1] | tonumber else error("want whole seconds: \(.)") end;
		(.containerDefinitions[] | select(.name == "dotproxy")) as $d
		| ($d.environment | map({(.name): .value}) | add) as $env
		| (($env.DOTPROXY_LAMEDUCK // "0s") | secs) as $lameduck
		| (($env.DOTPROXY_QUERY_TIMEOUT // "4s") | secs) as $query
		| ($lameduck > 0) and ($d.stopTimeout > $lameduck + $query + 1)
		and ($d.healthCheck.command == ["CMD", "/dotproxy", "healthcheck"])
	' "$1" >/dev/null
}
check "ECS: stopTimeout outlasts lameduck + query timeout + 1 s; the health check is liveness" ecs_drain "$ECS"
jq '(.containerDefinitions[] | select(.name == "dotproxy") | .stopTimeout) = 10' "$ECS" >"$TMP/bad-ecs-stop.json"
check "ECS: a stopTimeout shorter than the drain is caught" fails ecs_drain "$TMP/bad-ecs-stop.json"
jq '(.containerDefinitions[] | select(.name == "dotproxy") | .healthCheck.command) += ["-ready"]' "$ECS" >"$TMP/bad-ecs-ready.json"
check "ECS: a readiness container health check is caught" fails ecs_drain "$TMP/bad-ecs-ready.json"

# ---------------------------------------------------------------------------
section "deploy/nomad"
NOMAD=deploy/nomad/dotproxy.nomad.hcl
hcl_parses() { go run "$HCLFMT" -check "$1" >/dev/null; }
check "Nomad job parses as HCL (hclfmt -check)" hcl_parses "$NOMAD"
hcl_formatted() { diff -u "$NOMAD" <(go run "$HCLFMT" "$NOMAD"); }
check "Nomad job is hclfmt-formatted" hcl_formatted
sed 's/^job "dotproxy" {/job "dotproxy" {{/' "$NOMAD" >"$TMP/bad.nomad.hcl"
check "hclfmt rejects a broken copy" fails hcl_parses "$TMP/bad.nomad.hcl"
nomad_wiring() {
	grep -q '^job "dotproxy" {' "$NOMAD" && grep -q 'type = "service"' "$NOMAD" &&
		grep -q 'driver = "docker"' "$NOMAD" && grep -Eq 'args += \["healthcheck"\]' "$NOMAD" &&
		grep -qF 'DOTPROXY_STATSD_ADDR = "$''{attr.unique.network.ip-address}' "$NOMAD"
}
check "Nomad: service job, docker driver, healthcheck, node-local statsd" nomad_wiring
# The drain (issue 17): dotproxy's lameduck drains, shutdown_delay stays 0
# so that the two do not add up, and kill_timeout outlasts lameduck +
# DOTPROXY_QUERY_TIMEOUT (4 s) + 1 s.
nomad_seconds() { sed -nE "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"([0-9]+)s\"[[:space:]]*$/\1/p" "$2"; }
nomad_drain() {
	local lameduck kill delay
	lameduck=$(nomad_seconds DOTPROXY_LAMEDUCK "$1")
	kill=$(nomad_seconds kill_timeout "$1")
	delay=$(nomad_seconds shutdown_delay "$1")
	[ -n "$lameduck" ] && [ -n "$kill" ] && [ "$lameduck" -gt 0 ] && [ "${delay:-0}" -eq 0 ] &&
		[ "$kill" -gt $((lameduck + 4 + 1)) ]
}
check "Nomad: kill_timeout outlasts lameduck + query timeout + 1 s; no shutdown_delay on top" nomad_drain "$NOMAD"
sed -E 's/kill_timeout( *)= "15s"/kill_timeout\1= "8s"/' "$NOMAD" >"$TMP/bad-kill.nomad.hcl"
check "Nomad: a kill_timeout shorter than the drain is caught" fails nomad_drain "$TMP/bad-kill.nomad.hcl"
sed -E 's/shutdown_delay( *)= "0s"/shutdown_delay\1= "5s"/' "$NOMAD" >"$TMP/bad-delay.nomad.hcl"
check "Nomad: a shutdown_delay on top of the lameduck is caught" fails nomad_drain "$TMP/bad-delay.nomad.hcl"
# Readiness (-ready) gates Consul and deployments; only liveness restarts.
nomad_checks() {
	grep -Eq 'args += \["healthcheck", "-ready"\]' "$1" &&
		awk '
			/^[[:space:]]*check[[:space:]]*\{/ { args = "" }
			/^[[:space:]]*args[[:space:]]*=/ { args = $0 }
			/^[[:space:]]*check_restart[[:space:]]*\{/ { n++; if (args !~ /\["healthcheck"\]/) bad = 1 }
			END { exit !(n == 1 && !bad) }
		' "$1"
}
check "Nomad: a readiness check, and check_restart on the liveness check only" nomad_checks "$NOMAD"
awk '/args += \["healthcheck", "-ready"\]/ { print; print "        check_restart {"; print "          limit = 3"; print "        }"; next } { print }' "$NOMAD" >"$TMP/bad-restart.nomad.hcl"
check "Nomad: check_restart on the readiness check is caught" fails nomad_checks "$TMP/bad-restart.nomad.hcl"

# ---------------------------------------------------------------------------
section "deploy/systemd"
UNIT=deploy/systemd/dotproxy.service
# systemd-analyze verify resolves ExecStart= and the unit's dependencies, so it
# runs against a scratch root holding the system's units, the unit under test
# and stand-ins for the executables it names (ExecStart, ExecReload's kill).
unit_root() {
	local r=$1 unit=$2
	mkdir -p "$r/usr/local/bin" "$r/bin" "$r/etc/systemd/system" "$r/usr/lib/systemd"
	cp -a /usr/lib/systemd/system "$r/usr/lib/systemd/"
	install -m 0755 /bin/true "$r/usr/local/bin/dotproxy"
	install -m 0755 /bin/true "$r/bin/kill"
	install -m 0644 "$unit" "$r/etc/systemd/system/dotproxy.service"
}
unit_verifies() {
	local out
	out=$(systemd-analyze verify --root="$1" dotproxy.service 2>&1) || {
		echo "$out"
		return 1
	}
	# verify exits 0 on unknown keys and bad values; any word from it is a failure.
	[ -z "$out" ] || {
		echo "$out"
		return 1
	}
}
unit_root "$TMP/unit-ok" "$UNIT"
check "systemd-analyze verify: no warnings" unit_verifies "$TMP/unit-ok"
sed 's/^ProtectSystem=strict/ProtectSystem=bogus/' "$UNIT" >"$TMP/bad.service"
unit_root "$TMP/unit-bad" "$TMP/bad.service"
check "systemd-analyze verify rejects a broken copy" fails unit_verifies "$TMP/unit-bad"
unit_exposure() {
	local out
	out=$(systemd-analyze security --offline=yes --root="$TMP/unit-ok" --threshold=25 dotproxy.service 2>&1) || {
		echo "$out" | tail -n 5
		return 1
	}
	echo "    $(grep 'Overall exposure' <<<"$out")"
}
check "systemd-analyze security: exposure at most 2.5 (hardened)" unit_exposure

# ---------------------------------------------------------------------------
section "GitHub workflows"
if ! command -v shellcheck >/dev/null; then
	echo "    shellcheck not installed: actionlint will not check run: scripts"
fi
check "actionlint" go run "$ACTIONLINT" -color=false

# ---------------------------------------------------------------------------
section "Dockerfile"
# Requirements from issue 5 that a reader could break without noticing.
dockerfile_requirements() {
	local f=Dockerfile
	# shellcheck disable=SC2016 # the Dockerfile's own text
	grep -Fq 'FROM --platform=${BUILDPLATFORM:-linux} golang:${GO_VERSION} AS build' "$f" &&
		grep -q '^ARG GO_VERSION=1.26' "$f" &&
		grep -q 'TARGETOS' "$f" && grep -q 'TARGETARCH' "$f" &&
		grep -q 'CGO_ENABLED=0' "$f" && grep -q -- '-trimpath' "$f" &&
		grep -q '^FROM scratch' "$f" &&
		grep -q '^USER 65532:65532' "$f" &&
		grep -q '^EXPOSE 53/udp 53/tcp' "$f" &&
		grep -q 'CMD \["/dotproxy", "healthcheck"\]' "$f" &&
		grep -q 'org.opencontainers.image.source' "$f"
}
check "Dockerfile: multi-stage, static, scratch, non-root, 53, health check, labels" dockerfile_requirements
# A `# syntax=` line makes BuildKit pull a frontend image: the build would
# fail where no registry is reachable (CI here); the built-in one reads it all.
no_syntax_line() { ! grep -Eiq '^#[[:space:]]*syntax[[:space:]]*=' Dockerfile; }
check "Dockerfile: no '# syntax=' line (builds with no registry)" no_syntax_line
# The legacy builder (a Docker 23+ CLI without buildx, docker-compose 1.29)
# rejects RUN flags and leaves $BUILDPLATFORM empty; the FROM line above
# falls back for the latter.
no_buildkit_only() { ! grep -Eq '^RUN[[:space:]]+--' Dockerfile; }
check "Dockerfile: no RUN --mount or other BuildKit-only flag (the legacy builder reads it)" no_buildkit_only
dockerignore_keeps_sources() { ! grep -Eq '^(\*\.go|go\.(mod|sum))$' .dockerignore; }
check ".dockerignore keeps go.mod, go.sum and the sources" dockerignore_keeps_sources
if apt-cache policy hadolint 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	apt-get install -y --no-install-recommends hadolint >/dev/null
	check "hadolint" hadolint Dockerfile
else
	echo "    hadolint: not packaged in this Debian release (apt-cache policy hadolint"
	echo "    shows no candidate); .ci/run lints the Dockerfile with trivy instead"
fi

e2e_summary
