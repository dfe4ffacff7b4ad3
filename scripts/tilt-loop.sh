#!/usr/bin/env bash
# The edit-rebuild loop, driven once: with `tilt up` running, a worker source file is saved
# (the same bytes written again, as an editor does), and the script waits until the dev
# BounceConfig's webhook Deployment has rolled to a new worker image and its new pod is
# Ready, printing the seconds from the save:
#   bash scripts/tilt-loop.sh [-- TILTFILE OPTIONS]
# Fails when no new ReplicaSet with a new image comes within 15 minutes. Run after
# scripts/tilt-ci.sh (same cluster, same options); stops its `tilt up` when done and leaves
# the cluster's objects (`tilt down` removes them). Needs what scripts/tilt-ci.sh needs.
set -euo pipefail

me="tilt-loop"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"

[ "${1:-}" != "--" ] || shift
tilt_and_helm

port="${TILT_PORT:-10351}"
logfile="$(mktemp)"
"$tilt" up --web-mode=prod --stream --port="$port" -- "$@" >"$logfile" 2>&1 &
tilt_pid=$!
stop() {
    local status=$?
    kill "$tilt_pid" 2>/dev/null || true
    wait "$tilt_pid" 2>/dev/null || true
    [ "$status" -eq 0 ] || { log "tilt up's log:"; tail -n 60 "$logfile" >&2; }
    rm -f "$logfile"
}
trap stop EXIT

log "waiting for tilt up to have everything healthy"
deadline=$((SECONDS + 120))
# Until the Tiltfile is loaded, tilt's API answers but knows no dev-smoke, and `tilt wait`
# gives up at once on a resource it does not know: wait for the resource to exist first.
until "$tilt" get --port="$port" uiresource/dev-smoke >/dev/null 2>&1; do
    kill -0 "$tilt_pid" 2>/dev/null || die "tilt up exited"
    [ "$SECONDS" -lt "$deadline" ] || die "tilt up did not load the Tiltfile's dev-smoke within 120 s (port $port)"
    sleep 1
done
"$tilt" wait --port="$port" --for=condition=Ready uiresource/dev-smoke --timeout=900s >/dev/null \
    || die "tilt up did not get dev-smoke Ready"

webhook_image() {
    kubectl -n mail get deployment/newsletter-webhook -o jsonpath='{.spec.template.spec.containers[0].image}'
}
before="$(webhook_image)"
log "workers run $before; saving worker/src/lib.rs"
file=worker/src/lib.rs
saved="$(mktemp)"
cp "$file" "$saved"
start=$(date +%s.%N)
cat "$saved" >"$file"
rm -f "$saved"

deadline=$((SECONDS + 900))
while :; do
    now="$(webhook_image)"
    if [ "$now" != "$before" ] \
        && [ "$(kubectl -n mail get deployment/newsletter-webhook -o jsonpath='{.status.updatedReplicas}/{.status.readyReplicas}/{.status.replicas}')" = "1/1/1" ] \
        && kubectl -n mail get pods -l app.kubernetes.io/component=webhook \
            -o jsonpath='{range .items[*]}{.spec.containers[0].image} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
            | grep -qx "$now True"; then
        break
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "no new worker pod Ready 15 minutes after the save (image still $now)"
    sleep 1
done
end=$(date +%s.%N)
log "new worker image $now Ready"
awk -v me="$me" -v a="$start" -v b="$end" -v f="$file" \
    'BEGIN { printf "%s: %.1f s from saving %s to the new worker pod Ready\n", me, b - a, f }'
