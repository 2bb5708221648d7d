#!/usr/bin/env bash
# Runs every test of the workspace: installs what the tests use when it is missing (gcc, g++,
# clang, make, ccache, a cross gcc for aarch64; iproute2 for the thin-link test's network
# namespace), builds the binaries the whole-pipeline tests run, then `cargo test`.
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

cargo build --workspace --bins
cargo test --workspace
