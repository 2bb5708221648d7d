#!/usr/bin/env bash
# Test support for homccd's compile environments (tests/it/environments.rs) and for the Debian
# packages (tests/packages.sh): a Debian 12 root filesystem with gcc, g++, systemd, adduser and
# man-db from Debian's packages, built once with debootstrap from the mirror
# this machine's apt sources name and cached in $HOMCC_ROOTFS_CACHE (default
# /var/cache/homcc-tests/rootfs), so that a second run downloads nothing. In it, homccd may run
# one compiler only: /usr/lib/homcc/g++-boxed, a link to g++ (a name the host does not have).
# It is imported as the docker image homcc-test:bookworm-3 (no image registry needed), and
# without /usr/lib/homcc as homcc-test:bookworm-3-fresh (a fresh system for the packages), and
# registered as two schroot profiles (type=directory, for root and nobody): homcc-test-bookworm,
# whose sessions see /tmp (schroot's default profile: the tests' job directories are there), and
# homcc-test-bookworm-blind, whose sessions do not (the minimal profile).
# Installs debootstrap and schroot when missing. Needs root. Prints the root filesystem's path.
# Usage: tests/rootfs.sh
set -euo pipefail
cache=${HOMCC_ROOTFS_CACHE:-/var/cache/homcc-tests/rootfs}
rootfs=$cache/bookworm-3
image=homcc-test:bookworm-3
profile=homcc-test-bookworm

missing=()
for tool in debootstrap schroot; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Debian mirror of this machine's apt sources (deb822 or one-line form).
mirror=$(sed -n 's/^URIs: *\(\S*\/debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\?\(\S*\/debian\)\/\? .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -1)
fi
mirror=${mirror:-http://deb.debian.org/debian}

# Built aside and renamed when complete: an interrupted run leaves no half root filesystem.
if [ ! -e "$rootfs/.homcc-complete" ]; then
  mkdir -p "$cache"
  rm -rf "$rootfs.tmp"
  debootstrap --variant=minbase --include=gcc,g++,systemd,systemd-sysv,adduser,man-db bookworm "$rootfs.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"
  mv "$rootfs.tmp" "$rootfs"
  touch "$rootfs/.homcc-complete"
fi

mkdir -p "$rootfs/usr/lib/homcc"
ln -sfn /usr/bin/g++ "$rootfs/usr/lib/homcc/g++-boxed"

if ! docker image inspect "$image" >/dev/null 2>&1; then
  tar -C "$rootfs" --exclude=./proc --exclude=./sys --exclude=./dev -c . | docker import - "$image" >/dev/null
fi
if ! docker image inspect "$image-fresh" >/dev/null 2>&1; then
  tar -C "$rootfs" --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./usr/lib/homcc -c . |
    docker import - "$image-fresh" >/dev/null
fi

mkdir -p /etc/schroot/chroot.d
for sees in default minimal; do
  name=$profile
  [ "$sees" = default ] || name=$profile-blind
  cat >"/etc/schroot/chroot.d/$name.conf" <<EOF
[$name]
description=Debian 12 with gcc and g++ (homcc's tests), mounts of schroot's $sees profile
type=directory
directory=$rootfs
users=root,nobody
root-users=root
profile=$sees
EOF
done
echo "$rootfs"
