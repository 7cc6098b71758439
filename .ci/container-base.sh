#!/bin/sh
# The Dockerfile's base image, made here: CI reaches Debian's mirror but no container registry, so
# python:3.11-slim-bookworm can't be pulled. Debian bookworm (minbase) + python3, python3-venv and
# ca-certificates, debootstrapped and imported into podman as $BASE_IMAGE. Cached: skipped when the
# image exists. Needs root (debootstrap) and `make container-tools` (podman, debootstrap).
#
#   .ci/container-base.sh            # make it (once)
#   podman build --build-arg BASE=localhost/playground-base:bookworm ...
set -eu

BASE_IMAGE=${BASE_IMAGE:-localhost/playground-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

if podman image exists "$BASE_IMAGE"; then
  echo "container-base: $BASE_IMAGE exists"
  exit 0
fi
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "container-base: $tool missing: run make container-tools" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "container-base: debootstrap needs root" >&2; exit 1; }

root=$(mktemp -d /var/tmp/playground-base.XXXXXX)
trap 'rm -rf "$root"' EXIT INT TERM
echo "container-base: debootstrap $SUITE into $root"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# What a slim image leaves out: apt's lists and caches, docs, man pages, locales other than C.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
# debootstrap copies the host's resolver settings in; the runtime provides its own.
: >"$root"/etc/resolv.conf
: >"$root"/etc/hostname

tar --numeric-owner --xattrs -C "$root" -c . | podman import \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --message "debian $SUITE minbase + python3, python3-venv, ca-certificates (.ci/container-base.sh)" \
  - "$BASE_IMAGE"
podman image ls "$BASE_IMAGE"
