#!/usr/bin/env bash
# THE test command of BounceOps (README and CI both run exactly this):
#   bash scripts/test.sh [extra cargo-nextest arguments]
# Each ensure_* step makes one thing the tests need available and exports how
# to reach it; add new ones (e.g. a mail server) next to ensure_postgres and
# call them from main.
set -euo pipefail

me="test"
log() { printf '%s: %s\n' "$me" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# PostgreSQL: tests create and drop their own databases through this URL.
# An already exported BOUNCEOPS_TEST_DATABASE_URL is tried first.
ensure_postgres() {
    local url
    log "ensuring PostgreSQL"
    url="$(DATABASE_URL="${BOUNCEOPS_TEST_DATABASE_URL:-${DATABASE_URL:-}}" \
        bash scripts/pg-ensure.sh)" || die "scripts/pg-ensure.sh failed"
    url="${url##*$'\n'}"
    [ -n "$url" ] || die "scripts/pg-ensure.sh printed no URL"
    export BOUNCEOPS_TEST_DATABASE_URL="$url"
    log "BOUNCEOPS_TEST_DATABASE_URL=$(printf '%s' "$url" | sed -E 's#(//[^:/@]*):[^@/]*@#\1:***@#')"
}

ensure_nextest() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install a Rust toolchain, see rust-version in Cargo.toml)"
    if ! cargo nextest --version >/dev/null 2>&1; then
        log "cargo-nextest missing: installing it with 'cargo install cargo-nextest --locked' (takes a few minutes)"
        cargo install cargo-nextest --locked
    fi
}

main() {
    ensure_nextest
    ensure_postgres
    log "running: cargo nextest run --workspace --no-fail-fast $*"
    cargo nextest run --workspace --no-fail-fast "$@"
}

main "$@"
