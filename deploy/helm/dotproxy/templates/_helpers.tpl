{{/* Names and labels. */}}
{{- define "dotproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dotproxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "dotproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dotproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dotproxy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dotproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "dotproxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dotproxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dotproxy.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
dotproxy.durationMs: a Go duration ("5s", "1500ms", "1m30s", "0") in whole
milliseconds, rounded up. Units below a millisecond are refused: no setting
the chart reads needs them.
*/}}
{{- define "dotproxy.durationMs" -}}
{{- $d := toString . | trim -}}
{{- if eq $d "0" -}}
0
{{- else if regexMatch "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$" $d -}}
{{- $units := dict "ms" 1.0 "s" 1000.0 "m" 60000.0 "h" 3600000.0 -}}
{{- $ms := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h)" $d -1 -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 -}}
{{- $unit := regexReplaceAll "^[0-9]+(\\.[0-9]+)?" . "" -}}
{{- $ms = addf $ms (mulf $number (get $units $unit)) -}}
{{- end -}}
{{- $ms | ceil | int -}}
{{- else -}}
{{- fail (printf "duration %q: write it as dotproxy reads it, e.g. 5s, 1500ms, 1m30s" $d) -}}
{{- end -}}
{{- end -}}

{{/* dotproxy.lameduck: the drain period of the chosen mode. */}}
{{- define "dotproxy.lameduck" -}}
{{- if eq .Values.mode "daemonset" -}}
{{- .Values.daemonset.lameduck -}}
{{- else -}}
{{- .Values.deployment.lameduck -}}
{{- end -}}
{{- end -}}

{{/* dotproxy.queryTimeoutMs: DOTPROXY_QUERY_TIMEOUT, or dotproxy's 4 s. */}}
{{- define "dotproxy.queryTimeoutMs" -}}
{{- include "dotproxy.durationMs" (dig "DOTPROXY_QUERY_TIMEOUT" "4s" .Values.env) -}}
{{- end -}}

{{/*
dotproxy.gracePeriod: terminationGracePeriodSeconds. After SIGTERM dotproxy
answers for the lameduck, then drains for at most DOTPROXY_QUERY_TIMEOUT and
one second more before it exits; the kubelet's SIGKILL must come later.
*/}}
{{- define "dotproxy.gracePeriod" -}}
{{- $stopMs := add (include "dotproxy.durationMs" (include "dotproxy.lameduck" .) | int) (include "dotproxy.queryTimeoutMs" . | int) 1000 -}}
{{- $grace := .Values.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $grace -}}
{{- add (div (add $stopMs 999) 1000) 4 -}}
{{- else if le (mul (int $grace) 1000) $stopMs -}}
{{- fail (printf "terminationGracePeriodSeconds=%v: dotproxy may take %d ms to stop (lameduck + DOTPROXY_QUERY_TIMEOUT + 1 s); give it more, or leave it unset" $grace $stopMs) -}}
{{- else -}}
{{- int $grace -}}
{{- end -}}
{{- end -}}

{{/*
dotproxy.probeTimeout: `dotproxy healthcheck` waits DOTPROXY_QUERY_TIMEOUT
and a second for its answer; the probe must wait longer, or a slow SERVFAIL
(every upstream down) would count as a failed liveness check.
*/}}
{{- define "dotproxy.probeTimeout" -}}
{{- add (div (add (include "dotproxy.queryTimeoutMs" . | int) 1000 999) 1000) 1 -}}
{{- end -}}

{{/*
dotproxy.statsdTransport: statsd.transport with auto resolved per mode.
*/}}
{{- define "dotproxy.statsdTransport" -}}
{{- if ne .Values.statsd.transport "auto" -}}
{{- .Values.statsd.transport -}}
{{- else if eq .Values.mode "daemonset" -}}
unixSocket
{{- else -}}
hostUDP
{{- end -}}
{{- end -}}

{{/*
dotproxy.checkMemory: the container's memory limit must be at least twice
what dotproxy allows itself (memlimit.go: 40 MiB + the in-flight budget):
the Go limit is soft, so the container gets room above it rather than an
OOM kill at the first flood.
*/}}
{{- define "dotproxy.checkMemory" -}}
{{- $limit := dig "limits" "memory" "" .Values.resources | toString -}}
{{- if $limit -}}
{{- $m := regexFindAll "^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$" $limit -1 -}}
{{- if not $m -}}
{{- fail (printf "resources.limits.memory=%q: give it in bytes or with Ki, Mi, Gi, Ti, k, M, G or T" $limit) -}}
{{- end -}}
{{- $number := regexFind "^[0-9]+" $limit | float64 -}}
{{- $suffix := regexReplaceAll "^[0-9]+" $limit "" -}}
{{- $scale := get (dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0) $suffix -}}
{{- $inflightMiB := dig "DOTPROXY_CLIENT_MAX_INFLIGHT_MIB" "16" .Values.env | toString | float64 -}}
{{- $needMiB := mulf 2.0 (addf 40.0 $inflightMiB) -}}
{{- if lt (divf (mulf $number $scale) 1048576.0) $needMiB -}}
{{- fail (printf "resources.limits.memory=%s: dotproxy may hold 40 MiB + DOTPROXY_CLIENT_MAX_INFLIGHT_MIB (%v MiB); give the container at least twice that, %v MiB" $limit $inflightMiB $needMiB) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
dotproxy.env: the container's environment. The first-class values become
their DOTPROXY_* variables; env adds the rest as given.
*/}}
{{- define "dotproxy.env" -}}
{{- $owned := list "DOTPROXY_UPSTREAMS" "DOTPROXY_BOOTSTRAP" "DOTPROXY_LISTEN" "DOTPROXY_LAMEDUCK" "DOTPROXY_STATSD_ADDR" -}}
{{- range $name, $_ := .Values.env -}}
{{- if has (upper $name) $owned -}}
{{- fail (printf "env.%s: set by the chart from its own values (upstreams, bootstrap, mode, lameduck, statsd)" $name) -}}
{{- end -}}
{{- end -}}
{{- $transport := include "dotproxy.statsdTransport" . -}}
{{- if has $transport (list "hostUDP" "address") }}
# Not a dotproxy setting (no DOTPROXY_ prefix): the node's address, for
# DOTPROXY_STATSD_ADDR below ($(NODE_IP) in statsd.address too).
- name: NODE_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- end }}
{{- if .Values.upstreams }}
- name: DOTPROXY_UPSTREAMS
  value: {{ join "," .Values.upstreams | quote }}
{{- end }}
{{- if .Values.bootstrap }}
- name: DOTPROXY_BOOTSTRAP
  value: {{ join "," .Values.bootstrap | quote }}
{{- end }}
- name: DOTPROXY_LISTEN
{{- if eq .Values.mode "daemonset" }}
{{- $addr := .Values.daemonset.listenAddress }}
  value: {{ ternary (printf "[%s]:53" $addr) (printf "%s:53" $addr) (contains ":" $addr) | quote }}
{{- else }}
  value: {{ printf ":%v" .Values.deployment.containerPort | quote }}
{{- end }}
- name: DOTPROXY_LAMEDUCK
  value: {{ include "dotproxy.lameduck" . | quote }}
{{- if eq $transport "unixSocket" }}
- name: DOTPROXY_STATSD_ADDR
  value: {{ printf "unix://%s" .Values.statsd.socketPath | quote }}
{{- else if eq $transport "hostUDP" }}
- name: DOTPROXY_STATSD_ADDR
  value: {{ printf "$(NODE_IP):%v" .Values.statsd.port | quote }}
{{- else if eq $transport "address" }}
- name: DOTPROXY_STATSD_ADDR
  value: {{ required "statsd.address is required with statsd.transport=address" .Values.statsd.address | quote }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
dotproxy.podSpec: everything both modes share. The security context is the
restricted profile's, fixed: UID 65532 is the image's USER.
*/}}
{{- define "dotproxy.podSpec" -}}
{{- include "dotproxy.checkMemory" . -}}
{{- $transport := include "dotproxy.statsdTransport" . -}}
serviceAccountName: {{ include "dotproxy.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
dnsPolicy: {{ .Values.dnsPolicy }}
terminationGracePeriodSeconds: {{ include "dotproxy.gracePeriod" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: dotproxy
    image: {{ include "dotproxy.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    {{- $port := ternary 53 .Values.deployment.containerPort (eq .Values.mode "daemonset") }}
    ports:
      - name: dns-udp
        containerPort: {{ $port }}
        protocol: UDP
      - name: dns-tcp
        containerPort: {{ $port }}
        protocol: TCP
    env:
      {{- include "dotproxy.env" . | trim | nindent 6 }}
    securityContext:
      allowPrivilegeEscalation: false
      privileged: false
      readOnlyRootFilesystem: true
      runAsNonRoot: true
      capabilities:
        drop: ["ALL"]
    livenessProbe:
      exec:
        command: ["/dotproxy", "healthcheck"]
      periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
      timeoutSeconds: {{ include "dotproxy.probeTimeout" . }}
      failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
    readinessProbe:
      exec:
        command: ["/dotproxy", "healthcheck", "-ready"]
      periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
      timeoutSeconds: {{ include "dotproxy.probeTimeout" . }}
      failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
    {{- with .Values.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- if eq $transport "unixSocket" }}
    volumeMounts:
      - name: statsd-socket
        mountPath: {{ dir .Values.statsd.socketPath }}
        readOnly: true
    {{- end }}
{{- if eq $transport "unixSocket" }}
volumes:
  # The agent's socket directory. Read-only is enough: sending on a Unix
  # socket needs write permission on the socket, not on its file system.
  - name: statsd-socket
    hostPath:
      path: {{ dir .Values.statsd.socketPath }}
      type: DirectoryOrCreate
{{- end }}
{{- end -}}
