#!/usr/bin/env bash
# Benchmark (prints figures; not a test): what homccd's check of cached blobs after a restart
# costs. A restarted homccd hashes each blob it found on disk before its first use
# (docs/cache.md). This fills a cache with one C++ TU's files (~230), restarts homccd on it, and
# prints the first compile after the restart (which hashes them) against warm ones, RUNS times.
# Usage: tests/bench-verify.sh [RUNS]
set -euo pipefail
runs=${1:-5}
cd "$(dirname "$0")/.."
source tests/homccd.sh
start_homccd info
cd "$work"
write_tu
export XDG_CACHE_HOME=$work/client-cache
compile_ms() { # one compile through homcc against $host, in ms
  local start end
  start=$(date +%s%N)
  "$bin/homcc" --host "$host" g++ -O2 -c tu.cpp -o tu.o
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
restart() { # a new homccd on the same cache
  kill "$server"; wait "$server" 2>/dev/null || true
  "$bin/homccd" --listen 127.0.0.1 --port 0 --cache-dir "$work/server-cache" 2>"$work/homccd.log" &
  server=$!
  until grep -q '^listening on' "$work/homccd.log"; do sleep 0.05; done
  host=$(sed -n 's/^listening on //p' "$work/homccd.log")
}
compile_ms >/dev/null # cold: fills the cache
bytes=$(du -sb "$work/server-cache/blobs-v1" | cut -f1)
blobs=$(find "$work/server-cache/blobs-v1" -type f | wc -l)
firsts=() warms=()
for ((i = 0; i < runs; i++)); do
  restart
  firsts+=($(compile_ms))
  warms+=($(compile_ms))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
first=$(median "${firsts[@]}")
warm=$(median "${warms[@]}")
echo "cache: $blobs blobs, $bytes bytes"
echo "medians of $runs restarts: first compile after a restart ${first} ms, warm ${warm} ms"
echo "difference: $((first - warm)) ms for $((bytes / 1048576)) MB of blobs (blake3 reads about 650 MB/s from disk, 2.5 GB/s from the page cache)"
