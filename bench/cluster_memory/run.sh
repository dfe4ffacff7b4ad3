#!/usr/bin/env bash
# Each pod's memory (the kubelet's working set of its cgroup) idle and under load, and the
# mailbox pod's scan of 100 messages, on a real cluster:
#   bash bench/cluster_memory/run.sh [RATE] [SECONDS]
# Installs the chart with the local images and a BounceConfig as the cluster suite does
# (tests/tests/cluster_user_path/, whose ignored bench_pod_memory_idle_and_under_load it
# runs), lets it settle, then posts RATE bounces/s (default 1000) through the webhook
# Service for SECONDS (default 30) from this machine, sampling every pod's memory each
# second. Needs what the cluster suite needs (docs/development.md): the cluster's
# kubeconfig in BOUNCEOPS_CLUSTER_KUBECONFIG with the images of scripts/images.sh loaded,
# a Postgres (BOUNCEOPS_TEST_DATABASE_URL, default the machine's), dovecot and helm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ -n "${BOUNCEOPS_CLUSTER_KUBECONFIG:-}" ] || {
    echo "set BOUNCEOPS_CLUSTER_KUBECONFIG to the kubeconfig of a cluster with the images loaded" >&2
    exit 2
}
export BOUNCEOPS_BENCH_RATE="${1:-1000}" BOUNCEOPS_BENCH_SECONDS="${2:-30}"
export BOUNCEOPS_HELM="${BOUNCEOPS_HELM:-$(bash scripts/ensure-helm.sh | tail -n 1)}"
export BOUNCEOPS_TEST_DATABASE_URL="${BOUNCEOPS_TEST_DATABASE_URL:-$(bash scripts/pg-ensure.sh | tail -n 1)}"
cargo nextest run -p bounceops-tests --test cluster_user_path --run-ignored only \
    --no-capture -E 'test(bench_pod_memory_idle_and_under_load)'
