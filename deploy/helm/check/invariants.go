package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// What dotproxy does by default and how long it takes to stop, from the
// main module; TestFactsMatchDotproxy reads them there and fails if they
// drift.
const (
	// defaultQueryTimeout is proxy.DefaultQueryTimeout.
	defaultQueryTimeout = 4 * time.Second
	// defaultInflightMiB is proxy.DefaultMaxInFlightBytes in MiB.
	defaultInflightMiB = 16
	// memoryHeadroomMiB is memlimit.go's memoryHeadroom in MiB: dotproxy
	// limits its heap to this plus DOTPROXY_CLIENT_MAX_INFLIGHT_MIB.
	memoryHeadroomMiB = 40
	// stopRoom is what stopping takes past the lameduck and the queries'
	// own deadline (shutdown.go: QueryTimeout and a second).
	stopRoom = time.Second
	// imageUID is the Dockerfile's USER.
	imageUID = 65532
)

// containerName is the dotproxy container in each pod template.
const containerName = "dotproxy"

// The probe commands: liveness asks whether the process serves at all,
// readiness whether it can answer now.
var (
	livenessCommand  = []string{"/dotproxy", "healthcheck"}
	readinessCommand = []string{"/dotproxy", "healthcheck", "-ready"}
)

// mode is what the chart was rendered as: the kinds it must produce and
// the rules its pod template follows.
type mode struct {
	name        string // "deployment" or "daemonset"
	autoscaling bool   // a HorizontalPodAutoscaler is expected
}

// wantKinds is the exact set of kinds a rendering in mode m holds.
func (m mode) wantKinds() []string {
	if m.name == "daemonset" {
		return []string{"DaemonSet", "ServiceAccount"}
	}
	kinds := []string{"Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}
	if m.autoscaling {
		kinds = append(kinds, "HorizontalPodAutoscaler")
		slices.Sort(kinds)
	}
	return kinds
}

// check returns every way the manifest breaks the rules of mode md.
func check(m *manifest, md mode) []error {
	var errs []error
	report := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	got := slices.Clone(m.kinds)
	slices.Sort(got)
	if want := md.wantKinds(); !slices.Equal(got, want) {
		report("kinds: got %v, want one each of %v", got, want)
	}
	for _, sa := range m.serviceAccounts {
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			report("ServiceAccount %s: automountServiceAccountToken must be false (dotproxy never calls the API)", sa.Name)
		}
	}
	switch md.name {
	case "deployment":
		for _, d := range m.deployments {
			errs = append(errs, checkDeployment(m, d)...)
		}
	case "daemonset":
		for _, ds := range m.daemonSets {
			errs = append(errs, checkDaemonSet(ds)...)
		}
	default:
		report("mode %q: want deployment or daemonset", md.name)
	}
	return errs
}

func checkDeployment(m *manifest, d *appsv1.Deployment) []error {
	where := "Deployment " + d.Name
	errs := prefix(where, checkPod(d.Spec.Template.Spec, false))
	report := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(where+": "+format, args...))
	}
	pod := d.Spec.Template.Labels
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || !sel.Matches(labels.Set(pod)) {
		report("selector does not select its own pod template")
	}

	// A rollout takes no capacity away: one new pod at a time, and an old
	// one goes only when a new one is ready.
	s := d.Spec.Strategy
	if s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
		!isInt(s.RollingUpdate.MaxUnavailable, 0) || !isInt(s.RollingUpdate.MaxSurge, 1) {
		report("strategy must be RollingUpdate with maxUnavailable 0 and maxSurge 1")
	}
	if !spreadsOverNodes(d.Spec.Template.Spec) {
		report("replicas are not spread over nodes (topologySpreadConstraints or podAntiAffinity on kubernetes.io/hostname)")
	}
	if _, port, err := listen(dotproxyContainer(d.Spec.Template.Spec)); err == nil && port < 1024 {
		report("DOTPROXY_LISTEN port %d: under the restricted profile listen on a high port and let the Service map 53 to it", port)
	}

	// The Service: UDP and TCP 53, each to a container port of its protocol.
	var svcs int
	for _, svc := range m.services {
		if !selects(svc.Spec.Selector, pod) {
			continue
		}
		svcs++
		errs = append(errs, checkService(svc, d.Spec.Template.Spec)...)
	}
	if svcs == 0 {
		report("no Service selects its pods")
	}

	var budgets int
	for _, pdb := range m.budgets {
		if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err == nil && sel.Matches(labels.Set(pod)) {
			budgets++
		}
	}
	if budgets != 1 {
		report("%d PodDisruptionBudgets select its pods, want 1", budgets)
	}

	var scalers int
	for _, hpa := range m.autoscalers {
		ref := hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != d.Name {
			errs = append(errs, fmt.Errorf("HorizontalPodAutoscaler %s: scales %s %s %s, not this Deployment", hpa.Name, ref.APIVersion, ref.Kind, ref.Name))
			continue
		}
		scalers++
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
			report("autoscaling: minReplicas must be at least 2, so that one node's loss leaves a replica")
		}
		cpu := false
		for _, metric := range hpa.Spec.Metrics {
			cpu = cpu || metric.Type == "Resource" && metric.Resource != nil && metric.Resource.Name == corev1.ResourceCPU
		}
		if !cpu {
			report("autoscaling: no CPU metric")
		}
		if c := dotproxyContainer(d.Spec.Template.Spec); c != nil && c.Resources.Requests.Cpu().IsZero() {
			report("autoscaling on CPU needs resources.requests.cpu")
		}
	}
	switch {
	case scalers > 0 && d.Spec.Replicas != nil:
		report("replicas is set while a HorizontalPodAutoscaler owns it: every upgrade would reset the scale")
	case scalers == 0 && (d.Spec.Replicas == nil || *d.Spec.Replicas < 2):
		report("replicas must be at least 2 without autoscaling")
	}
	return errs
}

func checkService(svc *corev1.Service, pod corev1.PodSpec) []error {
	var errs []error
	report := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("Service "+svc.Name+": "+format, args...))
	}
	c := dotproxyContainer(pod)
	have := map[corev1.Protocol]bool{}
	for _, p := range svc.Spec.Ports {
		if p.Port != 53 {
			continue
		}
		have[p.Protocol] = true
		if c == nil || !targets(c, p.TargetPort, p.Protocol) {
			report("port 53/%s: targetPort %s is no %s port of the dotproxy container", p.Protocol, p.TargetPort.String(), p.Protocol)
		}
	}
	if !have[corev1.ProtocolUDP] || !have[corev1.ProtocolTCP] {
		report("needs port 53 on both UDP and TCP")
	}
	return errs
}

func checkDaemonSet(ds *appsv1.DaemonSet) []error {
	where := "DaemonSet " + ds.Name
	spec := ds.Spec.Template.Spec
	errs := prefix(where, checkPod(spec, true))
	report := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(where+": "+format, args...))
	}
	if sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector); err != nil || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		report("selector does not select its own pod template")
	}
	if !spec.HostNetwork {
		report("hostNetwork must be true: the pod serves an address of its node")
	}
	// With host network, ClusterFirst falls back to Default, and
	// ClusterFirstWithHostNet sends dotproxy's own lookups to the cluster
	// DNS, which may be dotproxy: the bootstrap loop.
	if spec.DNSPolicy != corev1.DNSDefault {
		report("dnsPolicy %q: want Default, so that dotproxy never resolves its upstreams through itself", spec.DNSPolicy)
	}
	// Two pods of one node cannot hold its address at once.
	u := ds.Spec.UpdateStrategy
	if u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil ||
		!(u.RollingUpdate.MaxSurge == nil || isInt(u.RollingUpdate.MaxSurge, 0)) || isInt(u.RollingUpdate.MaxUnavailable, 0) {
		report("updateStrategy must be RollingUpdate with maxSurge 0 and maxUnavailable at least 1")
	}
	if host, port, err := listen(dotproxyContainer(spec)); err == nil {
		if a, err := netip.ParseAddr(host); err != nil || a.IsUnspecified() {
			report("DOTPROXY_LISTEN host %q: on host network listen on the node-local address, not every address of the node", host)
		}
		if port != 53 {
			report("DOTPROXY_LISTEN port %d: pods' resolv.conf can only name port 53", port)
		}
	}
	return errs
}

// checkPod holds a pod template to the restricted Pod Security profile, the
// probes, the grace period and the memory limit. A DaemonSet's pod (host
// set) is allowed host network and read-only hostPath volumes, and nothing
// else of the host: both put it under the privileged profile, where
// node-level DNS runs.
func checkPod(spec corev1.PodSpec, host bool) []error {
	var errs []error
	report := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if spec.HostNetwork && !host {
		report("hostNetwork is not allowed under the restricted profile")
	}
	if spec.HostPID || spec.HostIPC {
		report("hostPID and hostIPC are not allowed")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		report("automountServiceAccountToken must be false")
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		report("securityContext.runAsNonRoot must be true")
	}
	if psc.RunAsUser == nil || *psc.RunAsUser != imageUID {
		report("securityContext.runAsUser must be %d, the image's user", imageUID)
	}
	if len(psc.Sysctls) > 0 {
		report("securityContext.sysctls: the chart sets none")
	}
	podSeccomp := psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	for _, v := range spec.Volumes {
		switch {
		case v.HostPath != nil && host:
			if !mountedReadOnly(spec, v.Name) {
				report("volume %s: a hostPath must be mounted read-only", v.Name)
			}
		case v.HostPath != nil:
			report("volume %s: hostPath is not allowed under the restricted profile", v.Name)
		case v.ConfigMap == nil && v.Secret == nil && v.EmptyDir == nil && v.Projected == nil &&
			v.DownwardAPI == nil && v.CSI == nil && v.PersistentVolumeClaim == nil && v.Ephemeral == nil:
			report("volume %s: a type the restricted profile does not allow", v.Name)
		}
	}

	all := slices.Concat(spec.InitContainers, spec.Containers)
	for i := range all {
		c := &all[i]
		for _, e := range checkContainer(c, podSeccomp, host) {
			report("container %s: %w", c.Name, e)
		}
	}
	c := dotproxyContainer(spec)
	if c == nil {
		report("no container named %q", containerName)
		return errs
	}
	env, err := environment(c)
	if err != nil {
		report("container %s: %w", c.Name, err)
		return errs
	}
	for _, e := range checkTiming(spec, c, env) {
		report("container %s: %w", c.Name, e)
	}
	for _, e := range checkMemory(c, env) {
		report("container %s: %w", c.Name, e)
	}
	if _, port, err := listen(c); err != nil {
		report("container %s: %w", c.Name, err)
	} else {
		for _, proto := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP} {
			if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
				return p.Protocol == proto && int(p.ContainerPort) == port
			}) {
				report("container %s: no %s containerPort %d for DOTPROXY_LISTEN", c.Name, proto, port)
			}
		}
	}
	return errs
}

func checkContainer(c *corev1.Container, podSeccomp, host bool) []error {
	var errs []error
	report := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	sc := c.SecurityContext
	if sc == nil {
		return []error{errors.New("no securityContext")}
	}
	if sc.Privileged != nil && *sc.Privileged {
		report("privileged")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		report("allowPrivilegeEscalation must be false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		report("readOnlyRootFilesystem must be true")
	}
	if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot || sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		report("runs as root")
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
		report("procMount must be Default")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		report("capabilities must drop ALL")
	} else if len(sc.Capabilities.Add) > 0 {
		// NET_BIND_SERVICE would be the only one allowed, and it does
		// nothing for a non-root process anyway (no ambient capabilities).
		report("capabilities.add %v: dotproxy needs none", sc.Capabilities.Add)
	}
	seccomp := podSeccomp
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	}
	if !seccomp {
		report("seccompProfile must be RuntimeDefault")
	}
	for _, p := range c.Ports {
		if p.HostPort != 0 && !host {
			report("hostPort %d is not allowed under the restricted profile", p.HostPort)
		}
	}
	return errs
}

// checkTiming checks the probes and that the kubelet's SIGKILL comes after
// dotproxy has stopped by itself.
func checkTiming(spec corev1.PodSpec, c *corev1.Container, env map[string]string) []error {
	var errs []error
	report := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	queryTimeout, err := duration(env, "DOTPROXY_QUERY_TIMEOUT", defaultQueryTimeout)
	if err != nil {
		return []error{err}
	}
	lameduck, err := duration(env, "DOTPROXY_LAMEDUCK", 0)
	if err != nil {
		return []error{err}
	}
	// `dotproxy healthcheck` waits up to the query timeout and a second.
	answerWait := queryTimeout + time.Second
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		want  []string
	}{
		{"livenessProbe", c.LivenessProbe, livenessCommand},
		{"readinessProbe", c.ReadinessProbe, readinessCommand},
	} {
		switch {
		case p.probe == nil:
			report("no %s", p.name)
		case p.probe.Exec == nil || !slices.Equal(p.probe.Exec.Command, p.want):
			report("%s must run %q", p.name, p.want)
		case seconds(p.probe.TimeoutSeconds) <= answerWait:
			report("%s timeoutSeconds %d: the health check may wait %v for its answer", p.name, p.probe.TimeoutSeconds, answerWait)
		}
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		report("a preStop hook would delay SIGTERM past the drain the grace period is sized for")
	}
	stop := lameduck + queryTimeout + stopRoom
	if spec.TerminationGracePeriodSeconds == nil {
		report("terminationGracePeriodSeconds unset (30 s by default): set it from the drain")
	} else if grace := seconds(int32(*spec.TerminationGracePeriodSeconds)); grace <= stop {
		report("terminationGracePeriodSeconds %v is not above lameduck %v + query timeout %v + %v", grace, lameduck, queryTimeout, stopRoom)
	}
	return errs
}

// checkMemory checks the container's memory limit against what dotproxy
// allows itself: twice its own soft limit, so that the Go limit acts long
// before the kernel's. GOMEMLIMIT would replace dotproxy's own limit.
func checkMemory(c *corev1.Container, env map[string]string) []error {
	if _, set := env["GOMEMLIMIT"]; set {
		return []error{errors.New("GOMEMLIMIT replaces the limit dotproxy sets from DOTPROXY_CLIENT_MAX_INFLIGHT_MIB")}
	}
	inflight := int64(defaultInflightMiB)
	if v, ok := env["DOTPROXY_CLIENT_MAX_INFLIGHT_MIB"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return []error{fmt.Errorf("DOTPROXY_CLIENT_MAX_INFLIGHT_MIB=%q: %w", v, err)}
		}
		inflight = n
	}
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		return []error{errors.New("no memory limit")}
	}
	need := resource.NewQuantity(2*(memoryHeadroomMiB+inflight)<<20, resource.BinarySI)
	if limit.Cmp(*need) < 0 {
		return []error{fmt.Errorf("memory limit %s is under twice dotproxy's own (%d MiB + %d MiB): want at least %s", limit.String(), memoryHeadroomMiB, inflight, need.String())}
	}
	if req, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok || req.IsZero() {
		return []error{errors.New("no memory request")}
	}
	return nil
}

// varRef is a $(NAME) reference, which the kubelet expands from variables
// defined earlier in the list.
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// environment returns the container's variables by name, refusing a name
// set twice and a $(NAME) that no earlier variable defines (the kubelet
// would pass it on literally).
func environment(c *corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			return nil, fmt.Errorf("env %s set twice", e.Name)
		}
		for _, ref := range varRef.FindAllStringSubmatch(e.Value, -1) {
			if _, ok := env[ref[1]]; !ok {
				return nil, fmt.Errorf("env %s refers to $(%s), which no earlier variable defines", e.Name, ref[1])
			}
		}
		env[e.Name] = e.Value
	}
	return env, nil
}

// listen returns the host and port of the first DOTPROXY_LISTEN address:
// the one the health check asks.
func listen(c *corev1.Container) (string, int, error) {
	if c == nil {
		return "", 0, errors.New("no dotproxy container")
	}
	env, err := environment(c)
	if err != nil {
		return "", 0, err
	}
	v, ok := env["DOTPROXY_LISTEN"]
	if !ok {
		return "", 0, errors.New("DOTPROXY_LISTEN unset (dotproxy would listen on :53)")
	}
	first, _, _ := strings.Cut(v, ",")
	host, port, err := net.SplitHostPort(strings.TrimSpace(first))
	if err != nil {
		return "", 0, fmt.Errorf("DOTPROXY_LISTEN=%q: %w", v, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("DOTPROXY_LISTEN=%q: port %q", v, port)
	}
	return host, n, nil
}

// duration reads a duration variable as dotproxy does, or def if unset.
func duration(env map[string]string, name string, def time.Duration) (time.Duration, error) {
	v, ok := env[name]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: not a duration", name, v)
	}
	return d, nil
}

func dotproxyContainer(spec corev1.PodSpec) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == containerName {
			return &spec.Containers[i]
		}
	}
	return nil
}

// targets reports whether a Service's targetPort names or numbers a port
// of c with protocol proto.
func targets(c *corev1.Container, target intstr.IntOrString, proto corev1.Protocol) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		if p.Protocol != proto {
			return false
		}
		if target.Type == intstr.String {
			return p.Name == target.StrVal
		}
		return p.ContainerPort == target.IntVal
	})
}

func spreadsOverNodes(spec corev1.PodSpec) bool {
	for _, t := range spec.TopologySpreadConstraints {
		if t.TopologyKey == corev1.LabelHostname {
			return true
		}
	}
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, t := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if t.TopologyKey == corev1.LabelHostname {
				return true
			}
		}
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if w.PodAffinityTerm.TopologyKey == corev1.LabelHostname {
				return true
			}
		}
	}
	return false
}

func mountedReadOnly(spec corev1.PodSpec, volume string) bool {
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, m := range c.VolumeMounts {
			if m.Name == volume && !m.ReadOnly {
				return false
			}
		}
	}
	return true
}

// selects reports whether a Service selector picks pods with these labels;
// an empty selector picks none (its endpoints are managed by hand).
func selects(selector, pod map[string]string) bool {
	return len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(pod))
}

func isInt(v *intstr.IntOrString, n int) bool {
	return v != nil && v.Type == intstr.Int && v.IntValue() == n
}

func seconds(n int32) time.Duration { return time.Duration(n) * time.Second }

func prefix(where string, errs []error) []error {
	for i, e := range errs {
		errs[i] = fmt.Errorf("%s: %w", where, e)
	}
	return errs
}
