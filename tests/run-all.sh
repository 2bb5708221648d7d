#!/usr/bin/env bash
# Runs every test of the workspace: installs what the tests use when it is missing (gcc, g++,
# clang, make, ccache, a cross gcc for aarch64; iproute2 for the thin-link test's network
# namespace; docker, started if it is not running; tests/rootfs.sh adds debootstrap, schroot and
# a cached Debian 12 root filesystem), builds the binaries the whole-pipeline tests run, then
# `cargo test`, then the Debian packages (tests/packages.sh), then the attacks on homccd again
# as user nobody, then runs each fuzz target for 20 s (HOMCC_FUZZ_SECONDS).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in gcc g++ clang clang++ make ccache ip tc aarch64-linux-gnu-gcc; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "installing what the tests need (missing: ${missing[*]})"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gcc g++ clang make ccache iproute2 gcc-aarch64-linux-gnu >/dev/null
fi

# The environment tests (tests/it/environments.rs) run compiles in a docker container: the
# engine must be up (tests/rootfs.sh builds their image and schroot profiles itself).
if ! command -v docker >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  echo "starting the docker engine"
  (dockerd >/var/log/homcc-tests-dockerd.log 2>&1 &)
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null
fi

cargo build --workspace --bins
cargo test --workspace

# The Debian packages: built, linted, installed in a fresh Debian 12 container with systemd.
bash tests/packages.sh

# The attacks on homccd once more as an unprivileged user (above they ran as root, where a
# compiler's writes are stopped differently): the whole-pipeline test binary runs as nobody.
it=$(cargo test -p homcc-tests --test it --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
if [ "$(id -u)" != 0 ]; then
  echo "attacks as an unprivileged user: these ran as one already"
elif ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$it"; then
  echo "attacks as an unprivileged user left out: user nobody cannot run $it"
else
  home=$(mktemp -d)
  chown 65534:65534 "$home"
  setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$home" "$it" attacks::
  rm -rf "$home"
fi

# Each fuzz target for a bounded time (tests/fuzz.sh SECONDS runs them longer). cargo fuzz needs
# the nightly toolchain; without one this says so and the fuzzing is left out.
if rustup run nightly rustc --version >/dev/null 2>&1; then
  bash tests/fuzz.sh "${HOMCC_FUZZ_SECONDS:-20}"
else
  echo "fuzzing left out: no nightly toolchain (rustup toolchain list)"
fi
