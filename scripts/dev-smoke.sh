#!/usr/bin/env bash
# The development setup's whole path once (the Tiltfile's `dev-smoke`, so `tilt ci` fails
# when it is broken):
#   bash scripts/dev-smoke.sh WORKER_URL OPERATOR_URL USER:TOKEN
# The operator's port answers /healthz and /metrics; a generic webhook bounce posted to the
# worker's port is answered 200 (answered means committed) and counted: the dev database
# has no subscribers, so it is kept as unmatched (bounceops_unmatched_total{source="tilt"}
# goes up by one); the bounce API answers with the dev credentials.
set -euo pipefail

me="dev-smoke"
die() { printf '%s: ERROR: %s\n' "$me" "$*" >&2; exit 1; }
[ $# -eq 3 ] || die "usage: $0 WORKER_URL OPERATOR_URL USER:TOKEN"
worker="$1" operator="$2" credentials="$3"

# Port-forwards come up a moment after their pods are Ready: retry refused connections.
get() { curl -fsS --retry 30 --retry-delay 1 --retry-connrefused --max-time 10 "$@"; }

get "$operator/healthz" >/dev/null || die "the operator's /healthz does not answer at $operator"
get "$operator/metrics" | grep -q '^bounceops_operator_' || die "no bounceops_operator_ metrics at $operator/metrics"

unmatched() {
    get "$worker/metrics" | awk '/^bounceops_unmatched_total\{.*source="tilt"/ { n += $NF } END { print n + 0 }'
}
before="$(unmatched)"
email="tilt-smoke-$(date +%s%N)@example.com"
answer="$(get -H "Authorization: token $credentials" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$email\",\"type\":\"hard\",\"source\":\"tilt\"}" "$worker/webhooks/bounce")" \
    || die "POST $worker/webhooks/bounce failed"
[ "$answer" = '{"data":true}' ] || die "unexpected answer to the bounce: $answer"
after="$(unmatched)"
[ "$after" -eq $((before + 1)) ] || die "bounceops_unmatched_total{source=\"tilt\"} went from $before to $after, not up by one"
get -H "Authorization: token $credentials" "$worker/api/bounces" | grep -q '"data"' \
    || die "the bounce API did not answer at $worker/api/bounces"
echo "$me: ok: operator answers; the bounce for $email was recorded (unmatched: $before -> $after); the bounce API answers"
