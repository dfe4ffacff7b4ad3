#!/usr/bin/env bash
# `tilt ci` of the development setup (the Tiltfile) against the cluster KUBECONFIG names:
#   bash scripts/tilt-ci.sh [-- TILTFILE OPTIONS, e.g. --builder=containerd --postgres=host]
# Exits 0 when `tilt ci` reports every resource healthy: the operator, the dev BounceConfig's
# webhook worker, both port-forwards, and `dev-smoke` (a bounce posted through the forwarded
# worker port, recorded). The cluster's objects stay (`tilt down` removes them); the host
# processes Tilt ran (port-forwards, the Postgres relay) end with it.
# Needs: tilt (TILT=/path, or on PATH), kubectl, and what the Tiltfile's options need
# (containerd builder: root, buildah, ctr; host Postgres: psql, socat — installed here with
# apt-get when missing and running as root). helm comes from scripts/ensure-helm.sh.
set -euo pipefail

me="tilt-ci"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"

[ "${1:-}" != "--" ] || shift
tilt_and_helm
command -v kubectl >/dev/null 2>&1 || die "kubectl not found on PATH"
kubectl version >/dev/null 2>&1 || die "no cluster answers at KUBECONFIG=${KUBECONFIG:-~/.kube/config}"

missing=()
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

log "$("$tilt" version)"
start=$SECONDS
"$tilt" ci --web-mode=prod --timeout=20m -- "$@"
log "tilt ci passed in $((SECONDS - start)) s"
