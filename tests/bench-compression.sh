#!/usr/bin/env bash
# Benchmark (prints figures; not a test): ratio and compression/decompression speed of none, lzo,
# lzma and zstd (homcc's level and others) on what homcc sends: the system headers a C++ compile
# reads, and object files, each file compressed on its own (tests/benches/compression.rs).
# Objects: zlib's sources, the first $GIT_FILES of git's that compile, and a C++ TU of the
# standard library (write_tu), each built with gcc -O2 -g and with -O0 -g.
# Usage: tests/bench-compression.sh [GIT_FILES]   (default 60)
set -euo pipefail
git_files=${1:-60}
cd "$(dirname "$0")/.."
source tests/homccd.sh # for write_tu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

zlib=(/work/src/zlib-1.2.13.dfsg/*.c)
git=(/work/src/git/*.c)
for opt in O2 O0; do
  out=$work/objects-$opt
  mkdir -p "$out"
  for src in "${zlib[@]}"; do
    gcc -"$opt" -g -c "$src" -o "$out/zlib-$(basename "$src" .c).o"
  done
  for src in "${git[@]:0:$git_files}"; do
    gcc -"$opt" -g -c -I/work/src/git "$src" -o "$out/git-$(basename "$src" .c).o" 2>/dev/null ||
      rm -f "$out/git-$(basename "$src" .c).o"
  done
  (cd "$work" && write_tu && g++ -"$opt" -g -c tu.cpp -o "$out/tu.o")
done

cargo bench --quiet -p homcc-tests --bench compression -- \
  headers=/usr/include/c++/12,/usr/include/x86_64-linux-gnu \
  "objects-O2g=$work/objects-O2" "objects-O0g=$work/objects-O0"
