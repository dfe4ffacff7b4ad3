# syntax=docker/dockerfile:1
# The bounce-worker and bounce-operator images: one recipe, one final stage (target) each.
# Each image is FROM scratch plus the root filesystem scripts/image-rootfs.sh assembles from
# Debian's own files: the glibc release binaries, the libraries they link, the CA bundle,
# /etc/passwd and /etc/group with the non-root user 65532. No shell, no package manager;
# it runs as 65532 with a read-only root filesystem.
#
# With a registry, from the repository root (the build stage compiles in rust:*-bookworm and
# runs scripts/image-rootfs.sh there; building both targets reuses it):
#   docker build --target bounce-worker   -t bounce-worker .
#   docker build --target bounce-operator -t bounce-operator .
# podman and buildah (Debian 12's 1.28, at least) do not resolve the default of
# ROOTFS_FROM below to the stage of that name: add `--build-arg ROOTFS_FROM=build`.
#
# Without a registry: `bash scripts/images.sh` compiles on a Debian 12 host, runs the same
# scripts/image-rootfs.sh there, commits its output as a local image and builds these same
# final stages with `--build-arg ROOTFS_FROM=<that image>`; the build stage is then unused
# and skipped, so nothing is pulled.

ARG RUST_VERSION=1.95
# Where the final stages copy their root filesystem from: the build stage, or an image that
# holds the same /out tree (scripts/images.sh).
ARG ROOTFS_FROM=build

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The binaries stay in the target cache mount, so /out is written in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bounce-worker -p bounce-operator \
    && bash scripts/image-rootfs.sh target/release /out

FROM ${ROOTFS_FROM} AS rootfs

# What both images share: no base image, and the non-root user image-rootfs.sh creates
# (numeric, so the kubelet can enforce runAsNonRoot).
FROM scratch AS runtime
LABEL org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
EXPOSE 8080

FROM runtime AS bounce-operator
LABEL org.opencontainers.image.title="bounce-operator" \
      org.opencontainers.image.description="BounceOps operator: reconciles BounceConfig resources into workers"
# Also carries crdgen: `--entrypoint crdgen` prints the CRD this operator expects.
COPY --from=rootfs /out/bounce-operator/ /
ENTRYPOINT ["/usr/local/bin/bounce-operator"]

FROM runtime AS bounce-worker
LABEL org.opencontainers.image.title="bounce-worker" \
      org.opencontainers.image.description="BounceOps worker: bounce webhooks, mailbox scanning, listmonk-compatible store, export and metrics"
COPY --from=rootfs /out/bounce-worker/ /
ENTRYPOINT ["/usr/local/bin/bounce-worker"]
CMD ["run", "--config", "/etc/bounceops/config.yaml", "--secrets-dir", "/var/run/bounceops/secrets", "--listen", "0.0.0.0:8080"]
