#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the test suite, the way
# controller-runtime's envtest does it: etcd + kube-apiserver (RBAC on) +
# kube-controller-manager (deployments, replicasets, garbage collector, namespaces,
# service accounts). No nodes: pods stay Pending.
#
#   scripts/envtest.sh start          start it; prints the admin kubeconfig path last
#   scripts/envtest.sh stop [--keep]  stop it; --keep moves the logs to $ENVTEST_DIR-logs
#   scripts/envtest.sh status         exit 0 when it is up
#
# The API server keeps an audit log of every ServiceAccount request in
# $ENVTEST_DIR/logs/audit.log (the RBAC tests read it).
#
# Binaries come from $KUBEBUILDER_ASSETS (kube-apiserver, and kube-controller-manager,
# etcd, kubectl when present there), as `setup-envtest use 1.33 -p path` lays them out.
# etcd falls back to the one on PATH (Debian: etcd-server).
#
# Knobs: ENVTEST_DIR (state, kubeconfig and logs; default target/envtest),
# ENVTEST_API_PORT / ENVTEST_ETCD_PORT (default: the first free ports from 26443 /
# 22379), ENVTEST_READY_TIMEOUT (seconds, default 90).
set -euo pipefail

me="envtest"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="${ENVTEST_DIR:-$repo/target/envtest}"
state="$dir/state"
host=127.0.0.1

port_free() { ! (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }
free_port() {
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}

running() {
    [ -f "$state" ] || return 1
    # shellcheck disable=SC1090
    . "$state"
    kill -0 "${APISERVER_PID:-0}" 2>/dev/null
}

# Dumps the tail of each log, for a failure seen in CI output.
show_logs() {
    local f
    for f in "${1:-$dir/logs}"/*.log; do
        # The audit log is for the RBAC tests, one long JSON line a request.
        [ -f "$f" ] && [ "${f##*/}" != audit.log ] || continue
        log "---- last lines of $f"
        tail -n 25 "$f" >&2 || true
    done
}

start() {
    local assets="${KUBEBUILDER_ASSETS:-}"
    [ -n "$assets" ] || die "KUBEBUILDER_ASSETS is not set (a folder with kube-apiserver, etcd, kubectl)"
    local apiserver="$assets/kube-apiserver" kcm="$assets/kube-controller-manager" etcd
    [ -x "$apiserver" ] || die "no kube-apiserver in KUBEBUILDER_ASSETS=$assets"
    etcd="$assets/etcd"
    [ -x "$etcd" ] || etcd="$(command -v etcd || true)"
    [ -n "$etcd" ] || die "no etcd in $assets nor on PATH (Debian: apt-get install etcd-server)"
    command -v openssl >/dev/null || die "openssl is needed to make the control plane's certificates"
    command -v curl >/dev/null || die "curl is needed to wait for readiness"
    if running; then
        log "already running (kubeconfig $dir/kubeconfig)"
        echo "$dir/kubeconfig"
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir/pki" "$dir/etcd" "$dir/logs"
    local pki="$dir/pki" api_port etcd_port
    api_port="${ENVTEST_API_PORT:-$(free_port 26443)}"
    etcd_port="${ENVTEST_ETCD_PORT:-$(free_port 22379)}"

    # Certificates: one CA for serving and clients, and the service-account key pair
    # (the controller-manager signs tokens with it, RBAC tests use them).
    (
        cd "$pki"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
            -subj "/CN=bounceops-envtest-ca" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout serving.key -out serving.csr \
            -subj "/CN=kube-apiserver" 2>/dev/null
        printf 'subjectAltName=IP:%s,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' \
            "$host" >serving.ext
        openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out serving.crt -days 30 -extfile serving.ext 2>/dev/null
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        chmod 600 ./*.key
    )
    local token
    token="$(openssl rand -hex 24)"
    printf '%s,envtest-admin,envtest-admin,"system:masters"\n' "$token" >"$pki/tokens.csv"
    chmod 600 "$pki/tokens.csv"

    # Audit what ServiceAccounts do, so the RBAC tests can compare what the operator
    # used with what the chart grants.
    cat >"$dir/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
EOF

    printf 'API_PORT=%s\nETCD_PORT=%s\n' "$api_port" "$etcd_port" >"$state"
    "$etcd" --name envtest --data-dir "$dir/etcd" \
        --listen-client-urls "http://$host:$etcd_port" --advertise-client-urls "http://$host:$etcd_port" \
        --listen-peer-urls "http://$host:$((etcd_port + 1))" \
        --initial-advertise-peer-urls "http://$host:$((etcd_port + 1))" \
        --initial-cluster "envtest=http://$host:$((etcd_port + 1))" \
        >"$dir/logs/etcd.log" 2>&1 </dev/null &
    echo "ETCD_PID=$!" >>"$state"

    "$apiserver" \
        --etcd-servers="http://$host:$etcd_port" \
        --bind-address="$host" --advertise-address="$host" --secure-port="$api_port" \
        --tls-cert-file="$pki/serving.crt" --tls-private-key-file="$pki/serving.key" \
        --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
        --authorization-mode=RBAC \
        --service-account-issuer=https://kubernetes.default.svc \
        --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
        --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
        --cert-dir="$dir/apiserver-certs" --profiling=false \
        --audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/logs/audit.log" \
        --audit-log-format=json --audit-log-mode=blocking \
        >"$dir/logs/kube-apiserver.log" 2>&1 </dev/null &
    echo "APISERVER_PID=$!" >>"$state"

    umask 077
    cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: https://$host:$api_port
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: envtest-admin
  user:
    token: $token
contexts:
- name: envtest
  context: {cluster: envtest, user: envtest-admin}
current-context: envtest
EOF
    umask 022

    local deadline=$((SECONDS + ${ENVTEST_READY_TIMEOUT:-90}))
    # shellcheck disable=SC1090
    . "$state"
    until curl -fsS --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" \
        "https://$host:$api_port/readyz" >/dev/null 2>&1; do
        kill -0 "$APISERVER_PID" 2>/dev/null || { show_logs; die "kube-apiserver exited"; }
        kill -0 "$ETCD_PID" 2>/dev/null || { show_logs; die "etcd exited"; }
        [ "$SECONDS" -lt "$deadline" ] || { show_logs; die "kube-apiserver not ready in time"; }
        sleep 0.5
    done

    if [ -x "$kcm" ]; then
        "$kcm" --kubeconfig="$dir/kubeconfig" \
            --authentication-kubeconfig="$dir/kubeconfig" --authorization-kubeconfig="$dir/kubeconfig" \
            --bind-address="$host" --secure-port=0 --leader-elect=false \
            --controllers=deployment,replicaset,garbagecollector,namespace,serviceaccount,serviceaccount-token \
            --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
            --profiling=false \
            >"$dir/logs/kube-controller-manager.log" 2>&1 </dev/null &
        echo "KCM_PID=$!" >>"$state"
    else
        log "no kube-controller-manager in $assets: no garbage collection, no Deployment status"
    fi
    # The namespace controller creates `default`'s ServiceAccount; tests that create
    # namespaces wait for their own.
    log "up on https://$host:$api_port (logs in $dir/logs)"
    echo "$dir/kubeconfig"
}

stop() {
    local keep="${1:-}"
    if [ ! -f "$state" ]; then
        log "not running"
        return
    fi
    # shellcheck disable=SC1090
    . "$state"
    local pid
    for pid in ${KCM_PID:-} ${APISERVER_PID:-} ${ETCD_PID:-}; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in ${KCM_PID:-} ${APISERVER_PID:-} ${ETCD_PID:-}; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "$keep" = "--keep" ]; then
        rm -rf "$dir-logs"
        mv "$dir/logs" "$dir-logs"
        log "stopped; logs kept in $dir-logs"
        show_logs "$dir-logs"
    else
        log "stopped"
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    status) running ;;
    *) die "usage: scripts/envtest.sh start | stop [--keep] | status" ;;
esac
