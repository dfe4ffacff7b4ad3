#!/usr/bin/env bash
# Builds the bounce-worker and bounce-operator images without a registry, with buildah from
# Debian, from the repository's Dockerfile:
#   bash scripts/images.sh
# writes target/images/bounce-worker.tar and target/images/bounce-operator.tar
# (docker-archive), tagged localhost/bounceops/bounce-worker:<version> and
# localhost/bounceops/bounce-operator:<version>, the workspace version (Cargo.toml), which is
# also the chart's appVersion and so its default image tag; and leaves both images in
# buildah's store.
#
# Same recipe as a registry build (see the Dockerfile's header): cargo builds the release
# binaries here instead of in rust:*-bookworm, scripts/image-rootfs.sh assembles the root
# filesystems from this host's Debian files, and the Dockerfile's final stages copy them
# from a local image instead of from the build stage.
#
# Runs as root on Debian 12 (installs buildah if it is missing; no stdin needed).
# Knobs:
#   CARGO_TARGET_DIR   where cargo builds (default: <repo>/target)
#   IMAGE_TAG          tag of both images (default: the workspace version, e.g. 0.1.0)
#   IMAGES_OUT         where the archives go (default: <repo>/target/images)
#   IMAGES             which images to build (default: "bounce-worker bounce-operator")
#   IMAGE_REF          with one image in IMAGES: its whole reference instead of
#                      localhost/bounceops/<image>:<IMAGE_TAG> (Tilt passes $EXPECTED_REF)
#   CONTAINERD_IMPORT  1: also import each archive into containerd's k8s.io namespace (the
#                      images of a cluster whose nodes run that containerd, with no registry)
#   CONTAINERD_ADDRESS its socket (default /run/containerd/containerd.sock)
#   STORAGE_DRIVER     buildah's storage driver: `vfs` where overlay is unavailable (inside
#                      another container); buildah reads it itself
set -euo pipefail

me="images"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$repo"
# The chart's default tag is its appVersion, which a test keeps equal to this version: the
# offline images and `helm install` name the same tag without a --set.
workspace_version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
[ -n "$workspace_version" ] || die "no version in Cargo.toml's [workspace.package]"
tag="${IMAGE_TAG:-$workspace_version}"
out="${IMAGES_OUT:-$repo/target/images}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
# Image names: the Dockerfile's final stages, each named after its entrypoint binary.
all_images=(bounce-worker bounce-operator)
read -r -a images <<<"${IMAGES:-${all_images[*]}}"
for image in "${images[@]}"; do
    [[ " ${all_images[*]} " == *" $image "* ]] || die "IMAGES: unknown image $image (known: ${all_images[*]})"
done
[ -z "${IMAGE_REF:-}" ] || [ "${#images[@]}" -eq 1 ] || die "IMAGE_REF names one image: set IMAGES to one"
# Per build, so that two builds at once (Tilt builds both images in parallel) do not
# remove each other's.
rootfs_image="localhost/bounceops/image-rootfs:$tag-$$"

[ "$(id -u)" -eq 0 ] || die "run as root: buildah stores images under /var/lib/containers and the rootfs check uses chroot"
command -v cargo >/dev/null 2>&1 || die "cargo not found: a Rust toolchain is needed (rust-version in Cargo.toml)"
if ! command -v buildah >/dev/null 2>&1; then
    # No runtime (runc/crun) is needed: the final stages only COPY, nothing is RUN.
    log "installing buildah (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah </dev/null >/dev/null \
        || die "could not install buildah with apt-get"
fi
log "$(buildah --version)"

work="$(mktemp -d)"
container=""
cleanup() {
    [ -z "$container" ] || buildah rm "$container" >/dev/null 2>&1 || true
    # --force also removes the containers buildah bud (1.28) leaves behind for the
    # `FROM ${ROOTFS_FROM} AS rootfs` stage, which would otherwise pin the image.
    buildah rmi --force "$rootfs_image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

log "cargo build --release (into $target_dir)"
start=$SECONDS
CARGO_TARGET_DIR="$target_dir" cargo build --release --locked -p bounce-worker -p bounce-operator
log "release build took $((SECONDS - start)) s"

bash scripts/image-rootfs.sh "$target_dir/release" "$work/out"

# Catches a library the binaries need but the rootfs lacks, before any container engine is
# involved: each entrypoint must start inside its own rootfs, as the Dockerfile's USER.
user="$(awk '$1 == "USER" { print $2; exit }' Dockerfile)"
[ -n "$user" ] || die "no USER line in the Dockerfile"
chroot="$(command -v chroot)" || die "chroot not found (coreutils)"
for image in "${images[@]}"; do
    version="$(env -i "$chroot" --userspec="$user" "$work/out/$image" "/usr/local/bin/$image" --version)" \
        || die "$image does not start inside its rootfs ($work/out/$image)"
    log "runs inside its rootfs: $version"
done

# The same /out tree the Dockerfile's build stage produces, as a local image for ROOTFS_FROM.
log "committing the root filesystems as $rootfs_image"
container="$(buildah from scratch)"
buildah copy --quiet "$container" "$work/out" /out >/dev/null
buildah commit --quiet --rm "$container" "$rootfs_image" >/dev/null
container=""

# An empty context: only the build stage reads the context, and buildah skips that stage
# when ROOTFS_FROM names an image.
mkdir -p "$work/context" "$out"
for image in "${images[@]}"; do
    ref="${IMAGE_REF:-localhost/bounceops/$image:$tag}"
    archive="$out/$image.tar"
    log "building $ref (Dockerfile target $image)"
    # Untag the previous build so rebuilding does not pile up unnamed images. --squash: buildah
    # gives the shared runtime stage an empty layer of its own; a registry build has none.
    buildah rmi "$ref" >/dev/null 2>&1 || true
    buildah bud --quiet --squash --pull=never --target "$image" \
        --build-arg "ROOTFS_FROM=$rootfs_image" \
        -f "$repo/Dockerfile" -t "$ref" "$work/context" >/dev/null \
        || die "buildah bud --target $image failed"
    rm -f "$archive"
    buildah push --quiet "$ref" "docker-archive:$archive:$ref" \
        || die "could not write $archive"
    log "$ref: user $(buildah inspect --format '{{.OCIv1.Config.User}}' "$ref"), entrypoint $(buildah inspect --format '{{.OCIv1.Config.Entrypoint}}' "$ref")"
    log "$archive: $(stat -c %s "$archive") bytes; rootfs $(du -sb "$work/out/$image" | cut -f1) bytes; gzipped (about what a registry stores) $(gzip -6 -c "$archive" | wc -c) bytes"
    if [ "${CONTAINERD_IMPORT:-}" = 1 ]; then
        ctr -a "${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}" -n k8s.io images import "$archive" >/dev/null \
            || die "could not import $archive into containerd"
        log "$ref imported into containerd (k8s.io)"
    fi
done
log "done: $(printf '%s ' "${images[@]/%/.tar}")in $out"
