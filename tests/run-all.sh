#!/usr/bin/env bash
# Runs every test of the workspace: installs the compilers the tests use (gcc, g++, clang) when
# they are missing, builds the binaries the whole-pipeline tests run, then `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in gcc g++ clang clang++; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "installing compilers for the tests (missing: ${missing[*]})"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gcc g++ clang >/dev/null
fi

cargo build --workspace --bins
cargo test --workspace
