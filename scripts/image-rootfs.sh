#!/usr/bin/env bash
# Assembles the root filesystems of the two images from release binaries built on a Debian
# system, using that system's own files: no base image.
#   bash scripts/image-rootfs.sh RELEASE_DIR OUT_DIR
# RELEASE_DIR holds bounce-worker, bounce-operator and crdgen (cargo's target/release);
# OUT_DIR/bounce-worker/ and OUT_DIR/bounce-operator/ become the images' `/`.
#
# This is the one recipe for both ways of building the images: the Dockerfile's build stage
# runs it inside rust:*-bookworm, and scripts/images.sh runs it on a Debian 12 host. Each
# rootfs holds:
#   - the binaries, under /usr/local/bin;
#   - the shared libraries they link (found with ldd) and the dynamic loader, copied from the
#     system that built them, so they match the glibc the binaries were linked against;
#   - /etc/ssl/certs/ca-certificates.crt: mailbox TLS reads the system roots from there;
#   - /etc/passwd, /etc/group: root and the non-root user the images run as;
#   - /etc/nsswitch.conf: glibc >= 2.34 has the files and dns NSS modules built in, so
#     getaddrinfo needs no libnss_*.so; the file puts /etc/hosts (Kubernetes hostAliases)
#     before DNS, where glibc's default without it would ask DNS first;
#   - the dpkg records and copyright files of the Debian packages those files come from, so
#     image scanners can see the glibc version and the licences travel with the libraries.
# No shell, no /tmp: the binaries need neither, and the pods run with a read-only root.
set -euo pipefail

me="image-rootfs"
log() { printf '%s: %s\n' "$me" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The user the images run as. 65532 is the uid the chart's podSecurityContext and the
# operator's worker pods run as, so the running uid has a name here; the Dockerfile's USER
# lines repeat it (tests/tests/images.rs checks that they agree).
IMAGE_USER=nonroot
IMAGE_UID=65532

# Image name, then the binaries it carries (the first is its entrypoint). `crdgen` rides in
# the operator image so `--entrypoint crdgen` prints the CRD that operator expects.
IMAGES=(
    "bounce-worker:bounce-worker"
    "bounce-operator:bounce-operator crdgen"
)
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

[ "$#" -eq 2 ] || die "usage: $0 RELEASE_DIR OUT_DIR"
release="$1"
out="$2"
[ -d "$release" ] || die "$release: no such directory (build first: cargo build --release -p bounce-worker -p bounce-operator)"
for tool in ldd dpkg-query; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: this script runs on Debian (or a Debian-based image)"
done
[ -s "$CA_BUNDLE" ] || die "$CA_BUNDLE missing: install the ca-certificates package"

# Prints every shared object the binary loads, the dynamic loader included, one path a line.
shared_objects() {
    local bin="$1" listing
    listing="$(ldd "$bin" 2>&1)" || {
        # A static binary (a musl build, say) needs no libraries.
        [[ "$listing" == *"not a dynamic executable"* ]] && return 0
        die "ldd $bin failed: $listing"
    }
    if grep -q "not found" <<<"$listing"; then
        die "$bin links libraries this system lacks: $(grep 'not found' <<<"$listing" | tr -s ' \t' ' ')"
    fi
    # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
    # linux-vdso has no file.
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing"
}

# Copies a file's contents (not a symlink to it) to the same path under the rootfs: the
# loader's PT_INTERP path and glibc's default library directories must resolve inside the
# image, where there is no ld.so.cache and no merged-/usr symlinks.
copy_file() {
    local src="$1" root="$2"
    install -D -m "$(stat -L -c '%a' "$src")" "$(readlink -f "$src")" "$root$src"
}

# The Debian package owning a file, by the path as given or, on merged-/usr systems where
# dpkg records the other spelling, by its resolved path.
package_of() {
    local path="$1" pkg
    pkg="$(dpkg-query -S "$path" 2>/dev/null || dpkg-query -S "$(readlink -f "$path")" 2>/dev/null)" \
        || die "no Debian package owns $path"
    pkg="${pkg%%: *}"
    printf '%s\n' "${pkg%%:*}"
}

record_package() {
    local pkg="$1" root="$2" copyright="/usr/share/doc/$1/copyright"
    mkdir -p "$root/var/lib/dpkg/status.d"
    dpkg-query -s "$pkg" >"$root/var/lib/dpkg/status.d/$pkg"
    if [ -f "$copyright" ]; then
        install -D -m 0644 "$copyright" "$root$copyright"
    fi
}

rm -rf "$out"
mkdir -p "$out"
for spec in "${IMAGES[@]}"; do
    image="${spec%%:*}"
    read -r -a bins <<<"${spec#*:}"
    root="$out/$image"
    log "assembling $root (${bins[*]})"
    mkdir -p "$root/usr/local/bin" "$root/etc"

    # update-ca-certificates generates the bundle, so dpkg knows no owner for it: name its package.
    install -D -m 0644 "$CA_BUNDLE" "$root$CA_BUNDLE"
    packages=(ca-certificates)
    files=()
    for bin in "${bins[@]}"; do
        [ -x "$release/$bin" ] || die "$release/$bin missing or not executable"
        install -m 0755 "$release/$bin" "$root/usr/local/bin/$bin"
        # Captured first: a failure inside a process substitution would not stop the script.
        objects="$(shared_objects "$release/$bin")"
        [ -z "$objects" ] || mapfile -t -O "${#files[@]}" files <<<"$objects"
    done
    mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)

    for f in "${files[@]}"; do
        copy_file "$f" "$root"
        pkg="$(package_of "$f")"
        packages+=("$pkg")
    done
    mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
    for pkg in "${packages[@]}"; do
        record_package "$pkg" "$root"
    done

    cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
$IMAGE_USER:x:$IMAGE_UID:$IMAGE_UID:$IMAGE_USER:/nonexistent:/sbin/nologin
EOF
    cat >"$root/etc/group" <<EOF
root:x:0:
$IMAGE_USER:x:$IMAGE_UID:
EOF
    cat >"$root/etc/nsswitch.conf" <<EOF
passwd: files
group: files
hosts: files dns
EOF
    chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"

    log "$image: ${#files[@]} shared objects and the CA bundle from ${packages[*]}; $(du -sb "$root" | cut -f1) bytes"
done
