#!/usr/bin/env bash
# Test support for homccd's compile environments (issue 13): a Debian 12 root filesystem with
# gcc and g++ from Debian's packages, built once with debootstrap from the mirror this machine's
# apt sources name and cached in $HOMCC_ROOTFS_CACHE (default /var/cache/homcc-tests/rootfs), so
# that a second run downloads nothing; imported as the docker image homcc-test:bookworm (no image
# registry needed); and registered as the schroot profile homcc-test-bookworm (type=directory).
# Installs debootstrap and schroot when missing. Needs root. Prints the root filesystem's path.
# Usage: tests/rootfs.sh
set -euo pipefail
cache=${HOMCC_ROOTFS_CACHE:-/var/cache/homcc-tests/rootfs}
rootfs=$cache/bookworm
image=homcc-test:bookworm
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
  debootstrap --variant=minbase --include=gcc,g++ bookworm "$rootfs.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"
  mv "$rootfs.tmp" "$rootfs"
  touch "$rootfs/.homcc-complete"
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
  tar -C "$rootfs" --exclude=./proc --exclude=./sys --exclude=./dev -c . | docker import - "$image" >/dev/null
fi

conf=/etc/schroot/chroot.d/$profile.conf
if [ ! -e "$conf" ]; then
  mkdir -p /etc/schroot/chroot.d
  cat >"$conf" <<EOF
[$profile]
description=Debian 12 with gcc and g++ (homcc's tests)
type=directory
directory=$rootfs
users=root
root-users=root
profile=minimal
EOF
fi
echo "$rootfs"
