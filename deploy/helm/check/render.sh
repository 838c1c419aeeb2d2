#!/usr/bin/env bash
# Renders the dotproxy chart the three ways CI checks it, into DIR (default:
# this directory's testdata/, which the checker's tests start from):
#
#   bash deploy/helm/check/render.sh [DIR]
#
# deployment.yaml: the defaults; autoscaling.yaml: with the
# HorizontalPodAutoscaler; daemonset.yaml: the node-local DaemonSet. Needs
# helm on PATH.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHART="$HERE/../dotproxy"
OUT=${1:-$HERE/testdata}
mkdir -p "$OUT"

helm template dotproxy "$CHART" --namespace dns >"$OUT/deployment.yaml"
helm template dotproxy "$CHART" --namespace dns \
	--set deployment.autoscaling.enabled=true >"$OUT/autoscaling.yaml"
helm template dotproxy "$CHART" --namespace kube-system \
	--set mode=daemonset >"$OUT/daemonset.yaml"
