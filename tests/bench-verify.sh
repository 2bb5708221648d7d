#!/usr/bin/env bash
# Benchmark (prints figures; not a test): what homccd's check of every cached file it places in a
# job root costs a compile (docs/cache.md). Places a typical C++ TU's headers (~250 files) from a
# cache into a fresh directory, again and again, with homccd's Cache::link_into (hard link, then
# hash the link) and with plain hard links, and prints both (tests/benches/verify.rs).
# Usage: tests/bench-verify.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p homcc-tests --bench verify
