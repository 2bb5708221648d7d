#!/usr/bin/env bash
# The Debian packages, as a user gets them: builds homcc and homccd with `dpkg-buildpackage -b -us
# -uc` from this checkout and checks that
#   1. lintian reports no error for either package;
#   2. the man pages render with `man -l` and the bash completion completes `homcc --show-` to
#      the --show-* commands;
#   3. `systemd-analyze security --offline=true` rates homccd.service at most 3.0, and
#      `systemd-analyze verify` accepts it where the packages are installed;
#   4. in a fresh Debian 12 container (tests/rootfs.sh's root filesystem without /usr/lib/homcc,
#      systemd as its init, no network) `apt-get install ./homcc_*.deb ./homccd_*.deb` needs no
#      flag, starts homccd.service as user homccd, a compile through the masquerade directory
#      /usr/lib/homcc/bin is remote and has the bytes of a local compile, SIGTERM (systemctl stop)
#      stops homccd cleanly, and remove then purge leave no file behind, only the user homccd
#      (Debian keeps system users).
# Installs debhelper, lintian and systemd when missing; needs root and a running docker engine.
# Leaves the packages in $HOMCC_PACKAGES_DIR if set, else in a temp dir it removes.
# Usage: tests/packages.sh
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "packages: $*" >&2
  exit 1
}

missing=()
for tool in dh lintian systemd-analyze man; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debhelper dpkg-dev lintian systemd man-db >/dev/null
fi

work=$(mktemp -d)
container=homcc-packages-$$
cleanup() {
  docker rm -f "$container" >/dev/null 2>&1 || true
  debian/rules clean >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
out=${HOMCC_PACKAGES_DIR:-$work/packages}
mkdir -p "$out"

# dpkg-buildpackage writes next to the checkout; the files are moved to $out.
version=$(dpkg-parsechangelog -SVersion)
arch=$(dpkg --print-architecture)
echo "packages: building homcc $version"
dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; fail "dpkg-buildpackage failed"; }
for file in ../homcc_"${version}"_"$arch".{deb,buildinfo,changes} ../homcc{,d}-dbgsym_"${version}"_"$arch".deb ../homccd_"${version}"_"$arch".deb; do
  [ -e "$file" ] && mv "$file" "$out/"
done
debs=("$out/homcc_${version}_$arch.deb" "$out/homccd_${version}_$arch.deb")

# 1. lintian: no error (warnings and information are printed, for the reader).
lintian --fail-on error --display-info "${debs[@]}" 2>&1 | grep -v "running with root privileges" || true
lintian --fail-on error "${debs[@]}" >/dev/null 2>&1 || fail "lintian reports errors (above)"

# 2. The files as installed: man pages and completions.
root=$work/root
for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$root"; done
for page in usr/share/man/man1/homcc.1.gz usr/share/man/man8/homccd.8.gz; do
  warnings=$(MANWIDTH=80 man --warnings -P cat -l "$root/$page" 2>&1 >"$work/page.txt") ||
    fail "man -l $page failed: $warnings"
  [ -z "$warnings" ] || fail "man -l $page warns: $warnings"
  grep -q "^OPTIONS" "$work/page.txt" && grep -q -- "--generate" "$work/page.txt" ||
    fail "$page lacks its options"
done
grep -q -- "--update-links" <(MANWIDTH=80 man -P cat -l "$root/usr/share/man/man1/homcc.1.gz") ||
  fail "homcc(1) does not describe --update-links"
completed=$(bash -c '
  source "$1"
  COMP_WORDS=(homcc --show-); COMP_CWORD=1; COMP_LINE="homcc --show-"; COMP_POINT=${#COMP_LINE}
  _homcc homcc --show- homcc
  printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$root/usr/share/bash-completion/completions/homcc")
[ "$completed" = "--show-concurrency --show-hosts --show-variables " ] ||
  fail "bash completes 'homcc --show-' to '$completed'"
for file in usr/share/zsh/vendor-completions/_homcc{,d} usr/share/fish/vendor_completions.d/homcc{,d}.fish \
  usr/share/bash-completion/completions/homccd; do
  [ -s "$root/$file" ] || fail "$file is missing or empty"
done
echo "packages: man pages render, bash completes 'homcc --show-' to: $completed"

# 3. The unit's exposure, as systemd rates it (0 is best, 10 worst; "OK" is up to 4.9).
unit=$(find "$root" -name homccd.service)
exposure=$(systemd-analyze security --offline=true "$unit" 2>&1 | sed -n 's/.*Overall exposure level for homccd.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security rated nothing"
awk -v e="$exposure" 'BEGIN { exit !(e <= 3.0) }' || fail "homccd.service's exposure is $exposure, more than 3.0"
echo "packages: systemd-analyze security rates homccd.service $exposure"

# 4. A fresh Debian 12 with systemd as init.
image=homcc-test:bookworm-3-fresh
bash tests/rootfs.sh >/dev/null
docker run -d --name "$container" --network none --cap-add SYS_ADMIN \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cgroupns=host \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp:exec \
  "$image" /lib/systemd/systemd >/dev/null
inside() { docker exec "$container" "$@"; }
# Waits (up to 20 s) until homccd's journal holds at least COUNT (default 1) lines with PATTERN.
logged() { # PATTERN [COUNT]
  for _ in $(seq 100); do
    [ "$(inside journalctl -u homccd --no-pager 2>/dev/null | grep -c -- "$1")" -ge "${2:-1}" ] && return 0
    sleep 0.2
  done
  return 1
}
for _ in $(seq 100); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case $state in running | degraded) break ;; esac
  sleep 0.2
done
case $state in running | degraded) ;; *) fail "systemd in the container did not start ($state)" ;; esac

# Every file before, to compare with after the purge; what systemd and apt change on their own
# (journal, state, caches of package lists) is left out, and so is the cache homcc keeps for
# the user who compiled (/root/.cache/homcc): a user's own files, which no package removes.
snapshot() {
  inside find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /var/log -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache/apt \
    -o -path /var/cache/debconf -o -path /var/cache/man -o -path /var/lib/systemd/catalog -o -path /root/.cache \) -prune -o -print | sort
}
snapshot >"$work/before"
inside mkdir /tmp/pkgs
for deb in "${debs[@]}"; do docker exec -i "$container" sh -c "cat >/tmp/pkgs/${deb##*/}" <"$deb"; done
inside sh -c 'cd /tmp/pkgs && DEBIAN_FRONTEND=noninteractive apt-get install -y ./homcc_*.deb ./homccd_*.deb' >"$work/install.log" 2>&1 ||
  { tail -20 "$work/install.log" >&2; fail "apt-get install of both packages failed"; }
grep -i "warning\|error" "$work/install.log" | grep -v "unsandboxed" && fail "apt-get install warned (above)"

logged "listening on" || true
inside systemctl is-active --quiet homccd || { inside systemctl status homccd --no-pager >&2 || true; fail "homccd.service is not active"; }
logged "listening on" || fail "homccd did not say it listens"
pid=$(inside systemctl show -p MainPID --value homccd)
user=$(inside stat -c %U "/proc/$pid")
[ "$user" = homccd ] || fail "homccd runs as $user, not as homccd"
[ "$(inside stat -c %U /var/cache/homccd)" = homccd ] || fail "/var/cache/homccd does not belong to homccd"
verify=$(inside systemd-analyze verify homccd.service 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
links=$(inside ls /usr/lib/homcc/bin | tr '\n' ' ')
for name in gcc g++ cc c++ gcc-12 g++-12; do
  [[ " $links" == *" $name "* ]] || fail "no masquerade link $name in /usr/lib/homcc/bin: $links"
done
echo "packages: installed; homccd.service active as user homccd (pid $pid); masquerade links: $links"

# Settings come from /etc/homcc/homcc.conf's [homccd] table; a restart applies them.
inside sh -c 'printf "[homccd]\nlimit = 3\n" >>/etc/homcc/homcc.conf'
inside systemctl restart homccd
logged "compile slots limit=3" || fail "homccd did not take limit = 3 from /etc/homcc/homcc.conf"
echo "packages: homccd took limit = 3 from /etc/homcc/homcc.conf's [homccd] table"
logged "listening on" 2 || fail "homccd did not listen again after its restart"

# A compile through the masquerade directory, with the host in the installed hosts file.
inside sh -c 'echo "127.0.0.1/4" >>/etc/homcc/hosts'
inside mkdir /tmp/src
docker exec -i "$container" sh -c 'cat >/tmp/src/hello.cpp' <<'SOURCE'
#include <iostream>
#include <map>
#include <string>

int main() {
    std::map<std::string, int> seen;
    for (std::string word; std::cin >> word;) ++seen[word];
    for (const auto& [word, count] : seen) std::cout << word << ' ' << count << '\n';
}
SOURCE
inside sh -c 'cd /tmp/src && g++ -O2 -c hello.cpp -o local.o'
inside sh -c 'cd /tmp/src && PATH=/usr/lib/homcc/bin:$PATH HOMCC_VERBOSE=1 HOMCC_NO_LOCAL_COMPILATION=1 g++ -O2 -c hello.cpp -o remote.o' \
  >"$work/compile.log" 2>&1 || { cat "$work/compile.log" >&2; fail "the compile through /usr/lib/homcc/bin/g++ failed"; }
grep -q "^homcc: 127.0.0.1:3126: .*exit 0" "$work/compile.log" || { cat "$work/compile.log" >&2; fail "the compile did not run on homccd"; }
inside cmp /tmp/src/local.o /tmp/src/remote.o || fail "the remote object differs from the local one"
inside journalctl -u homccd --no-pager | grep -q "output=/tmp/src/remote.o .*result=exit 0" || fail "homccd's journal does not show the compile"
grep "^homcc: 127.0.0.1:3126" "$work/compile.log"
echo "packages: a compile through /usr/lib/homcc/bin/g++ ran on homccd; its object is the local one"

# A compiler installed or removed later gets or loses its link (homcc's dpkg trigger): a package
# of the test's own with /usr/bin/clang-99.
fake=$work/fake
mkdir -p "$fake/DEBIAN" "$fake/usr/bin"
printf 'Package: homcc-test-clang-99\nVersion: 1\nArchitecture: all\nMaintainer: homcc tests <tests@localhost>\nDescription: a compiler name for the trigger test\n' >"$fake/DEBIAN/control"
printf '#!/bin/sh\nexit 1\n' >"$fake/usr/bin/clang-99"
chmod 0755 "$fake/usr/bin/clang-99"
dpkg-deb --root-owner-group -b "$fake" "$work/fake.deb" >/dev/null
docker exec -i "$container" sh -c 'cat >/tmp/pkgs/fake.deb' <"$work/fake.deb"
inside dpkg -i /tmp/pkgs/fake.deb >/dev/null
inside test -L /usr/lib/homcc/bin/clang-99 || fail "installing clang-99 made no link in /usr/lib/homcc/bin"
inside dpkg --purge homcc-test-clang-99 >/dev/null
inside test ! -e /usr/lib/homcc/bin/clang-99 || fail "removing clang-99 left its link in /usr/lib/homcc/bin"
echo "packages: a compiler installed later got its link, and lost it when removed"

# A graceful stop on SIGTERM.
inside systemctl stop homccd
result=$(inside systemctl show -p Result --value homccd)
status=$(inside systemctl show -p ExecMainStatus --value homccd)
[ "$result" = success ] && [ "$status" = 0 ] || fail "homccd stopped with result $result, status $status"

# Remove keeps the conffiles and the cache, purge removes them; the user stays.
inside sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove -y homccd homcc' >"$work/remove.log" 2>&1 ||
  { tail -20 "$work/remove.log" >&2; fail "apt-get remove failed"; }
inside test ! -e /usr/lib/homcc || fail "remove left /usr/lib/homcc: $(inside ls -R /usr/lib/homcc)"
inside test -e /etc/homcc/homcc.conf || fail "remove took the conffiles"
inside sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y homccd homcc' >"$work/purge.log" 2>&1 ||
  { tail -20 "$work/purge.log" >&2; fail "apt-get purge failed"; }
snapshot >"$work/after"
if ! diff "$work/before" "$work/after" >"$work/diff"; then
  cat "$work/diff" >&2
  fail "remove and purge left files behind (above: < gone, > new)"
fi
inside getent passwd homccd >/dev/null || fail "purge removed the user homccd"
echo "packages: removed and purged: no file left, the system user homccd kept"
