#!/usr/bin/env bash
# Build the trixie root of the gproc personal pool: debootstrap, HTCondor, the
# execute-side processing tools and the service account. Idempotent; downloads are
# cached under CACHE and the finished root is kept there as a tarball (named after
# the package list), so a re-creation is an extraction of a few seconds.
# Usage: build_root.sh ROOT CACHE SERVICE_USER
# Each step prints "STEP: <name>" so a failure can be named by the caller.
set -euo pipefail
ROOT=$1
CACHE=$2
SERVICE_USER=$3
PACKAGES=(condor gdal-bin python3-gdal python3-numpy python3-opencv)
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$CACHE/debootstrap" "$CACHE/pool-apt/partial"
TARBALL="$CACHE/pool-root-$(echo "trixie ${PACKAGES[*]} $SERVICE_USER" | sha256sum | cut -c1-12).tar"

mirror() {
  # The machine's own Debian mirror (first URIs: line that is not the security archive).
  local src=/etc/apt/sources.list.d/debian.sources uri=""
  if [ -f "$src" ]; then
    uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$src" | grep -v -- '-security' | head -n1)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "no Debian mirror found in the machine's apt sources" >&2; exit 2; }
  echo "$uri"
}

MOUNTED=()
cleanup() {
  local m
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    m=${MOUNTED[i]}
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT

mount_once() { # mount_once TARGET ARGS...
  local target=$1; shift
  if ! awk -v t="$target" '$2 == t {found = 1} END {exit !found}' /proc/mounts; then
    mount "$@" "$target"
    MOUNTED+=("$target")
  fi
}

echo "STEP: extract cached root $TARBALL"
if [ -f "$TARBALL" ] && [ ! -f "$ROOT/.gproc-root-ready" ]; then
  rm -rf --one-file-system "$ROOT"
  mkdir -p "$ROOT"
  timeout 600 tar -C "$ROOT" -xf "$TARBALL"
  [ -f "$ROOT/.gproc-root-ready" ] && { echo "STEP: done (from cache)"; exit 0; }
fi

echo "STEP: install debootstrap"
if ! command -v debootstrap >/dev/null; then
  timeout 300 apt-get update -q
  timeout 600 apt-get install -y -q --no-install-recommends debootstrap
fi

echo "STEP: debootstrap trixie"
if [ ! -f "$ROOT/.gproc-debootstrap-done" ]; then
  rm -rf --one-file-system "$ROOT"
  MIRROR=$(mirror)
  echo "mirror: $MIRROR"
  timeout 900 debootstrap --variant=minbase --include=ca-certificates \
    --cache-dir="$CACHE/debootstrap" trixie "$ROOT" "$MIRROR"
  touch "$ROOT/.gproc-debootstrap-done"
fi

echo "STEP: mount for package installation"
mount_once "$ROOT/proc" -t proc proc
mount_once "$ROOT/sys" -t sysfs sys
mount_once "$ROOT/dev" --bind /dev
mount_once "$ROOT/var/cache/apt/archives" --bind "$CACHE/pool-apt"
# No service may start inside the root while packages are installed.
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

echo "STEP: apt-get update in the root"
timeout 600 chroot "$ROOT" apt-get update -q

echo "STEP: install ${PACKAGES[*]} in the root"
timeout 1200 chroot "$ROOT" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

echo "STEP: service account $SERVICE_USER"
if ! chroot "$ROOT" id -u "$SERVICE_USER" >/dev/null 2>&1; then
  chroot "$ROOT" useradd -m -s /bin/bash "$SERVICE_USER"
fi

touch "$ROOT/.gproc-root-ready"
echo "STEP: keep the root as $TARBALL"
cleanup
MOUNTED=()
timeout 600 tar -C "$ROOT" --one-file-system -cf "$TARBALL.tmp" .
mv "$TARBALL.tmp" "$TARBALL"
echo "STEP: done"
