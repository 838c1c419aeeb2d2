package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifest is a rendered chart, each object decoded into its API type.
type manifest struct {
	serviceAccounts []*corev1.ServiceAccount
	services        []*corev1.Service
	deployments     []*appsv1.Deployment
	daemonSets      []*appsv1.DaemonSet
	budgets         []*policyv1.PodDisruptionBudget
	autoscalers     []*autoscalingv2.HorizontalPodAutoscaler
	// kinds lists each object's kind, in the order rendered.
	kinds []string
}

// typeMeta is what a document must say about itself before it is decoded.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// readManifest splits r into YAML documents and decodes each strictly into
// the type its apiVersion and kind name, as the API server's strict field
// validation does: an unknown field, a field in the wrong case or a
// duplicate key is an error, and so is a kind the chart has no business
// rendering.
func readManifest(r io.Reader) (*manifest, error) {
	m := &manifest{}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var errs []error
	for n := 1; ; n++ {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if isBlank(doc) {
			continue
		}
		if err := m.add(doc); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", n, err))
		}
	}
	if len(errs) == 0 && len(m.kinds) == 0 {
		errs = append(errs, errors.New("no objects"))
	}
	return m, errors.Join(errs...)
}

// isBlank reports whether a document holds only comments, space and its
// "---" marker, as helm prints for a template that rendered nothing.
func isBlank(doc []byte) bool {
	for line := range bytes.Lines(doc) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("---")) {
			return false
		}
	}
	return true
}

func (m *manifest) add(doc []byte) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	var tm typeMeta
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return err
	}
	// keep files the object under its kind once it has decoded cleanly.
	var obj any
	var keep func()
	switch key := tm.APIVersion + " " + tm.Kind; key {
	case "v1 ServiceAccount":
		o := &corev1.ServiceAccount{}
		obj, keep = o, func() { m.serviceAccounts = append(m.serviceAccounts, o) }
	case "v1 Service":
		o := &corev1.Service{}
		obj, keep = o, func() { m.services = append(m.services, o) }
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		obj, keep = o, func() { m.deployments = append(m.deployments, o) }
	case "apps/v1 DaemonSet":
		o := &appsv1.DaemonSet{}
		obj, keep = o, func() { m.daemonSets = append(m.daemonSets, o) }
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		obj, keep = o, func() { m.budgets = append(m.budgets, o) }
	case "autoscaling/v2 HorizontalPodAutoscaler":
		o := &autoscalingv2.HorizontalPodAutoscaler{}
		obj, keep = o, func() { m.autoscalers = append(m.autoscalers, o) }
	default:
		return fmt.Errorf("apiVersion %q kind %q: not a type the chart renders", tm.APIVersion, tm.Kind)
	}
	strict, err := sigsjson.UnmarshalStrict(js, obj)
	if err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("%s: %w", tm.Kind, errors.Join(strict...))
	}
	keep()
	m.kinds = append(m.kinds, tm.Kind)
	return nil
}
