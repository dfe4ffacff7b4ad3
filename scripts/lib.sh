# Shared by the scripts here: `log` and `die` (naming the script by `me`, set before this
# is sourced) and `repo`, the checkout's root. It changes no directory: each script does.
# shellcheck shell=bash

log() { printf '%s: %s\n' "$me" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# For the Tilt scripts: sets `tilt` (TILT, else the one on PATH) and puts helm
# (scripts/ensure-helm.sh) on PATH, as the Tiltfile calls it.
tilt_and_helm() {
    local helm
    tilt="${TILT:-$(command -v tilt || true)}"
    [ -x "$tilt" ] || die "tilt not found: install it (https://docs.tilt.dev/install.html) or set TILT=/path/to/tilt"
    helm="$(bash "$repo/scripts/ensure-helm.sh" | tail -n 1)"
    PATH="$(dirname "$helm"):$PATH"
    export PATH
}
