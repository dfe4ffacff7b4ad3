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
# The test fails, so this exits non-zero saying which, when a bounce is not answered 2xx,
# the load falls under 90% of RATE, a pod's memory was not read, or a pod passes 64 MiB.
# Smoke mode: BENCH_SMOKE=1 bash bench/cluster_memory/run.sh (100 bounces/s for 5 s); without
# a cluster it says SKIPPED and exits 0, where the full run exits 2.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
smoke="${BENCH_SMOKE:-0}"
[ -n "${BOUNCEOPS_CLUSTER_KUBECONFIG:-}" ] || {
    if [ "$smoke" = 1 ]; then
        echo "bench: SKIPPED: the cluster memory bench needs a cluster (BOUNCEOPS_CLUSTER_KUBECONFIG unset: no Kubernetes binaries or no cluster-up here)" >&2
        exit 0
    fi
    echo "set BOUNCEOPS_CLUSTER_KUBECONFIG to the kubeconfig of a cluster with the images loaded" >&2
    exit 2
}
rate=1000 seconds=30
[ "$smoke" = 1 ] && rate=100 seconds=5
export BOUNCEOPS_BENCH_RATE="${1:-$rate}" BOUNCEOPS_BENCH_SECONDS="${2:-$seconds}"
export BOUNCEOPS_HELM="${BOUNCEOPS_HELM:-$(bash scripts/ensure-helm.sh | tail -n 1)}"
export BOUNCEOPS_TEST_DATABASE_URL="${BOUNCEOPS_TEST_DATABASE_URL:-$(bash scripts/pg-ensure.sh | tail -n 1)}"
cargo nextest run -p bounceops-tests --test cluster_user_path --run-ignored only \
    --no-capture -E 'test(bench_pod_memory_idle_and_under_load)'
