#!/usr/bin/env bash
# Provider webhooks benchmark (issue 3): the generic webhook, SES notifications through SNS
# (signature verified per request, certificate cached) and SendGrid batches of 100 events,
# side by side in one run against one worker and a fresh database. Exits non-zero, naming
# the check, when a request is answered anything but 2xx, or a provider event answered 2xx
# left no identity in bounceops.processed_events, or the worker's count of committed
# outcomes differs from the generic events answered 2xx (worker/examples/bench_providers.rs).
# Usage: bash bench/providers/run.sh [--clients 32,128] [--requests 6000] [--batches 150] [--rounds 2]
# Smoke mode: BENCH_SMOKE=1 bash bench/providers/run.sh (the debug build, 2,000 subscribers,
# 8 clients, 100 requests and 2 batches per scenario, 1 round; arguments still override).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

args=("$@")
if [ "$smoke" = 1 ]; then
    args=(--subscribers 2000 --clients 8 --requests 100 --batches 2 --rounds 1 "$@")
fi
admin="$(bash scripts/pg-ensure.sh)"
admin="${admin##*$'\n'}"
bench_build -p bounce-worker --example bench_providers
BOUNCEOPS_BENCH_DATABASE_URL="$admin" "$target/$profile/examples/bench_providers" "${args[@]}"
