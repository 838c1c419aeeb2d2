package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/internal/leakcheck"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The chart's renderings, as `helm template` prints them; .ci/run renders
// the chart again and fails if these differ, so the tests below always
// start from what the chart makes today.
var renderings = []struct {
	file string
	mode mode
}{
	{"deployment.yaml", mode{name: "deployment"}},
	{"autoscaling.yaml", mode{name: "deployment", autoscaling: true}},
	{"daemonset.yaml", mode{name: "daemonset"}},
}

func rendering(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, file string) *manifest {
	t.Helper()
	m, err := readManifest(bytes.NewReader(rendering(t, file)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRenderingsPass(t *testing.T) {
	for _, r := range renderings {
		t.Run(r.file, func(t *testing.T) {
			m := decode(t, r.file)
			for _, err := range check(m, r.mode) {
				t.Error(err)
			}
		})
	}
}

// TestStrictDecoding breaks the rendered text the ways a typo in a
// template would, and wants each refused by name, as the API server's
// strict field validation refuses it.
func TestStrictDecoding(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"a misspelt field", "deployment.yaml",
			"terminationGracePeriodSeconds:", "terminationGracePeriodSecond:",
			`unknown field "spec.template.spec.terminationGracePeriodSecond"`},
		{"a field in the wrong case", "daemonset.yaml",
			"hostNetwork: true", "HostNetwork: true",
			`unknown field "spec.template.spec.HostNetwork"`},
		{"a field at the wrong level", "deployment.yaml",
			"  runAsGroup: 65532\n", "  runAsGroup: 65532\n        readOnlyRootFilesystem: true\n",
			`unknown field "spec.template.spec.securityContext.readOnlyRootFilesystem"`},
		{"a key twice", "deployment.yaml",
			"dnsPolicy: Default\n", "dnsPolicy: Default\n      dnsPolicy: ClusterFirst\n",
			`"dnsPolicy" already set in map`},
		{"a string for a number", "deployment.yaml",
			"replicas: 2", "replicas: two",
			"cannot unmarshal string into Go struct field"},
		{"an API version that does not exist", "deployment.yaml",
			"apiVersion: apps/v1\nkind: Deployment", "apiVersion: apps/v2\nkind: Deployment",
			`apiVersion "apps/v2" kind "Deployment": not a type the chart renders`},
		{"a kind the chart does not render", "deployment.yaml",
			"kind: ServiceAccount", "kind: Secret",
			`apiVersion "v1" kind "Secret": not a type the chart renders`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := string(rendering(t, tc.file))
			if strings.Count(good, tc.old) != 1 {
				t.Fatalf("%q appears %d times in %s, want once", tc.old, strings.Count(good, tc.old), tc.file)
			}
			_, err := readManifest(strings.NewReader(strings.Replace(good, tc.old, tc.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestNoObjects(t *testing.T) {
	_, err := readManifest(strings.NewReader("---\n# Source: dotproxy/templates/hpa.yaml\n---\n"))
	if err == nil || !strings.Contains(err.Error(), "no objects") {
		t.Errorf("got %v, want no objects", err)
	}
}

// TestRulesCatch breaks a decoded rendering one rule at a time and wants
// exactly that rule reported.
func TestRulesCatch(t *testing.T) {
	dotproxy := func(m *manifest) *corev1.Container {
		if len(m.deployments) > 0 {
			return dotproxyContainer(m.deployments[0].Spec.Template.Spec)
		}
		return dotproxyContainer(m.daemonSets[0].Spec.Template.Spec)
	}
	pod := func(m *manifest) *corev1.PodSpec {
		if len(m.deployments) > 0 {
			return &m.deployments[0].Spec.Template.Spec
		}
		return &m.daemonSets[0].Spec.Template.Spec
	}
	setEnv := func(m *manifest, name, value string) {
		c := dotproxy(m)
		for i := range c.Env {
			if c.Env[i].Name == name {
				c.Env[i].Value = value
				return
			}
		}
		c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
	}
	yes, no := true, false
	for _, tc := range []struct {
		name, file string
		breakIt    func(m *manifest)
		want       string
	}{
		// The restricted profile, in both modes.
		{"privilege escalation", "deployment.yaml", func(m *manifest) {
			dotproxy(m).SecurityContext.AllowPrivilegeEscalation = &yes
		}, "allowPrivilegeEscalation must be false"},
		{"a writable root", "daemonset.yaml", func(m *manifest) {
			dotproxy(m).SecurityContext.ReadOnlyRootFilesystem = &no
		}, "readOnlyRootFilesystem must be true"},
		{"capabilities kept", "deployment.yaml", func(m *manifest) {
			dotproxy(m).SecurityContext.Capabilities.Drop = []corev1.Capability{"NET_RAW"}
		}, "capabilities must drop ALL"},
		{"a capability added", "daemonset.yaml", func(m *manifest) {
			dotproxy(m).SecurityContext.Capabilities.Add = []corev1.Capability{"NET_BIND_SERVICE"}
		}, "dotproxy needs none"},
		{"root", "deployment.yaml", func(m *manifest) {
			var root int64
			pod(m).SecurityContext.RunAsUser = &root
		}, "runAsUser must be 65532"},
		{"runAsNonRoot off", "daemonset.yaml", func(m *manifest) {
			pod(m).SecurityContext.RunAsNonRoot = &no
		}, "runAsNonRoot must be true"},
		{"no seccomp profile", "deployment.yaml", func(m *manifest) {
			pod(m).SecurityContext.SeccompProfile = nil
		}, "seccompProfile must be RuntimeDefault"},
		{"privileged", "daemonset.yaml", func(m *manifest) {
			dotproxy(m).SecurityContext.Privileged = &yes
		}, "privileged"},
		{"host network for the Deployment", "deployment.yaml", func(m *manifest) {
			pod(m).HostNetwork = true
		}, "hostNetwork is not allowed"},
		{"a hostPath in the Deployment", "deployment.yaml", func(m *manifest) {
			pod(m).Volumes = append(pod(m).Volumes, corev1.Volume{Name: "sock",
				VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run/datadog"}}})
		}, "hostPath is not allowed"},
		{"a writable hostPath in the DaemonSet", "daemonset.yaml", func(m *manifest) {
			dotproxy(m).VolumeMounts[0].ReadOnly = false
		}, "must be mounted read-only"},
		{"a service account token", "deployment.yaml", func(m *manifest) {
			pod(m).AutomountServiceAccountToken = nil
		}, "automountServiceAccountToken must be false"},

		// Probes and the drain.
		{"liveness asks for readiness", "deployment.yaml", func(m *manifest) {
			dotproxy(m).LivenessProbe.Exec.Command = readinessCommand
		}, `livenessProbe must run ["/dotproxy" "healthcheck"]`},
		{"readiness asks for liveness", "daemonset.yaml", func(m *manifest) {
			dotproxy(m).ReadinessProbe.Exec.Command = livenessCommand
		}, `readinessProbe must run ["/dotproxy" "healthcheck" "-ready"]`},
		{"a probe that gives up before the health check", "deployment.yaml", func(m *manifest) {
			dotproxy(m).ReadinessProbe.TimeoutSeconds = 5
		}, "readinessProbe timeoutSeconds 5"},
		{"a grace period inside the drain", "deployment.yaml", func(m *manifest) {
			grace := int64(10)
			pod(m).TerminationGracePeriodSeconds = &grace
		}, "terminationGracePeriodSeconds 10s is not above lameduck 5s + query timeout 4s + 1s"},
		{"a lameduck longer than the grace period allows", "deployment.yaml", func(m *manifest) {
			setEnv(m, "DOTPROXY_LAMEDUCK", "9s")
		}, "is not above lameduck 9s"},
		{"a query timeout the probes do not wait for", "daemonset.yaml", func(m *manifest) {
			setEnv(m, "DOTPROXY_QUERY_TIMEOUT", "6s")
		}, "the health check may wait 7s"},
		{"a preStop hook", "deployment.yaml", func(m *manifest) {
			dotproxy(m).Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}
		}, "preStop"},

		// Memory.
		{"a memory limit under twice dotproxy's own", "deployment.yaml", func(m *manifest) {
			dotproxy(m).Resources.Limits[corev1.ResourceMemory] = resource.MustParse("100Mi")
		}, "memory limit 100Mi is under twice dotproxy's own (40 MiB + 16 MiB): want at least 112Mi"},
		{"a larger in-flight budget on the same limit", "daemonset.yaml", func(m *manifest) {
			setEnv(m, "DOTPROXY_CLIENT_MAX_INFLIGHT_MIB", "64")
		}, "want at least 208Mi"},
		{"GOMEMLIMIT", "deployment.yaml", func(m *manifest) {
			setEnv(m, "GOMEMLIMIT", "100MiB")
		}, "GOMEMLIMIT replaces the limit"},

		// The environment.
		{"a variable used before it is defined", "deployment.yaml", func(m *manifest) {
			c := dotproxy(m)
			c.Env = append(c.Env[1:], c.Env[0]) // NODE_IP last
		}, "refers to $(NODE_IP), which no earlier variable defines"},
		{"a listen port with no container port", "deployment.yaml", func(m *manifest) {
			setEnv(m, "DOTPROXY_LISTEN", ":5354")
		}, "no UDP containerPort 5354 for DOTPROXY_LISTEN"},

		// The Deployment.
		{"a rollout that takes a pod away first", "deployment.yaml", func(m *manifest) {
			m.deployments[0].Spec.Strategy.RollingUpdate.MaxUnavailable = ptr(intstr.FromInt32(1))
		}, "maxUnavailable 0 and maxSurge 1"},
		{"no spread over nodes", "deployment.yaml", func(m *manifest) {
			pod(m).TopologySpreadConstraints = pod(m).TopologySpreadConstraints[1:]
		}, "not spread over nodes"},
		{"port 53 in the pod", "deployment.yaml", func(m *manifest) {
			setEnv(m, "DOTPROXY_LISTEN", ":53")
		}, "listen on a high port"},
		{"a Service without TCP", "deployment.yaml", func(m *manifest) {
			m.services[0].Spec.Ports = m.services[0].Spec.Ports[:1]
		}, "needs port 53 on both UDP and TCP"},
		{"a Service aimed at the wrong protocol", "deployment.yaml", func(m *manifest) {
			m.services[0].Spec.Ports[0].TargetPort = intstr.FromString("dns-tcp")
		}, "port 53/UDP: targetPort dns-tcp is no UDP port"},
		{"a Service that selects nothing", "deployment.yaml", func(m *manifest) {
			m.services[0].Spec.Selector = map[string]string{"app": "other"}
		}, "no Service selects its pods"},
		{"no disruption budget", "deployment.yaml", func(m *manifest) {
			m.budgets, m.kinds = nil, without(m.kinds, "PodDisruptionBudget")
		}, "0 PodDisruptionBudgets select its pods"},
		{"replicas beside an autoscaler", "autoscaling.yaml", func(m *manifest) {
			m.deployments[0].Spec.Replicas = ptr(int32(2))
		}, "replicas is set while a HorizontalPodAutoscaler owns it"},
		{"an autoscaler for another Deployment", "autoscaling.yaml", func(m *manifest) {
			m.autoscalers[0].Spec.ScaleTargetRef.Name = "other"
		}, "not this Deployment"},
		{"autoscaling without a CPU request", "autoscaling.yaml", func(m *manifest) {
			delete(dotproxy(m).Resources.Requests, corev1.ResourceCPU)
		}, "needs resources.requests.cpu"},
		{"an autoscaler expected but missing", "deployment.yaml", nil, "want one each of [Deployment HorizontalPodAutoscaler"},

		// The DaemonSet.
		{"no host network", "daemonset.yaml", func(m *manifest) {
			pod(m).HostNetwork = false
		}, "hostNetwork must be true"},
		{"the cluster DNS for dotproxy's own lookups", "daemonset.yaml", func(m *manifest) {
			pod(m).DNSPolicy = corev1.DNSClusterFirstWithHostNet
		}, `dnsPolicy "ClusterFirstWithHostNet": want Default`},
		{"a surge on one node", "daemonset.yaml", func(m *manifest) {
			m.daemonSets[0].Spec.UpdateStrategy.RollingUpdate.MaxSurge = ptr(intstr.FromInt32(1))
			m.daemonSets[0].Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr(intstr.FromInt32(0))
		}, "maxSurge 0 and maxUnavailable at least 1"},
		{"every address of the node", "daemonset.yaml", func(m *manifest) {
			setEnv(m, "DOTPROXY_LISTEN", ":53")
		}, "listen on the node-local address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var md mode
			for _, r := range renderings {
				if r.file == tc.file {
					md = r.mode
				}
			}
			m := decode(t, tc.file)
			if tc.breakIt != nil {
				tc.breakIt(m)
			} else {
				md.autoscaling = true
			}
			errs := check(m, md)
			var found bool
			for _, err := range errs {
				found = found || strings.Contains(err.Error(), tc.want)
			}
			if !found {
				t.Errorf("got %v, want an error with %q", errs, tc.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	file := filepath.Join("testdata", "daemonset.yaml")
	var out, errOut bytes.Buffer
	if code := run([]string{"-mode", "daemonset", file}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := "check: daemonset: 2 objects decoded strictly (ServiceAccount, DaemonSet), every rule holds\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"-mode", "deployment"}, bytes.NewReader(rendering(t, "daemonset.yaml")), &out, &errOut); code != 1 {
		t.Errorf("a DaemonSet checked as a Deployment: exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "rule(s) broken") {
		t.Errorf("stderr %q", errOut.String())
	}

	errOut.Reset()
	typo := strings.Replace(string(rendering(t, "daemonset.yaml")), "hostNetwork:", "hostNetworks:", 1)
	if code := run([]string{"-mode", "daemonset", "-"}, strings.NewReader(typo), &out, &errOut); code != 1 {
		t.Errorf("a typo: exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), `unknown field "spec.template.spec.hostNetworks"`) {
		t.Errorf("stderr %q", errOut.String())
	}

	if code := run([]string{"-bogus"}, nil, &out, &errOut); code != 2 {
		t.Errorf("a bad flag: exit %d, want 2", code)
	}
	if code := run([]string{"a", "b"}, nil, &out, &errOut); code != 2 {
		t.Errorf("two files: exit %d, want 2", code)
	}
}

func ptr[T any](v T) *T { return &v }

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}
