#!/usr/bin/env bash
# Provider webhooks benchmark (issue 3): the generic webhook, SES notifications through SNS
# (signature verified per request, certificate cached) and SendGrid batches of 100 events,
# side by side in one run against one worker and a fresh database.
# Usage: bash bench/providers/run.sh [--clients 32,128] [--requests 6000] [--batches 150] [--rounds 2]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
log() { printf 'bench: %s\n' "$*" >&2; }

admin="$(bash scripts/pg-ensure.sh)"
admin="${admin##*$'\n'}"
log "building (release)"
cargo build -q --release -p bounce-worker --example bench_providers
BOUNCEOPS_BENCH_DATABASE_URL="$admin" \
    "${CARGO_TARGET_DIR:-$repo/target}/release/examples/bench_providers" "$@"
