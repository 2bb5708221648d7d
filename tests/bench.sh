#!/usr/bin/env bash
# Benchmark (prints figures; not a test): what a warm compile through homcc costs over loopback,
# compared with its parts run plainly. For a typical C++ TU (~230 files) it runs, RUNS times each:
#   scan   = g++ <flags> -M            (the dependency scan homcc runs)
#   local  = g++ <flags> -c            (the compile itself, as the server runs it)
#   homcc  = homcc g++ <flags> -c      (warm: the server has every file)
# and prints the medians, and the time homcc adds: warm homcc - scan - the compiler's own run on
# the server (homccd logs it as compile_ms): hashing, request, job root, output transfer.
# Usage: tests/bench.sh [RUNS]
set -euo pipefail
runs=${1:-20}
cd "$(dirname "$0")/.."
source tests/homccd.sh
start_homccd info
cd "$work"
write_tu
flags=(-O2 -c tu.cpp -o tu.o)
export XDG_CACHE_HOME=$work/client-cache

median_ms() { # command...: median wall time of $runs runs, in ms
  local times=() start end
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s%N); "$@" >/dev/null 2>&1; end=$(date +%s%N)
    times+=($(((end - start) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

"$bin/homcc" --verbose --host "$host" g++ "${flags[@]}" 2>cold.txt
"$bin/homcc" --verbose --host "$host" g++ "${flags[@]}" 2>warm.txt
echo "cold: $(cat cold.txt)"
echo "warm: $(cat warm.txt)"
scan=$(median_ms g++ -O2 -M tu.cpp)
local=$(median_ms g++ "${flags[@]}")
remote=$(median_ms "$bin/homcc" --host "$host" g++ "${flags[@]}")
server_compile=$(grep -o 'compile_ms=[0-9]*' "$work/homccd.log" | tail -n "$runs" | cut -d= -f2 | sort -n |
  awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "medians of $runs runs: scan ${scan} ms, local compile ${local} ms, warm homcc ${remote} ms (compiler on the server ${server_compile} ms)"
awk -v r="$remote" -v s="$scan" -v c="$server_compile" -v l="$local" \
  'BEGIN {printf "homcc adds %.1f ms over the plain dependency scan (warm homcc - scan - server compile); %+.1f ms against a plain local compile\n", r - s - c, r - l}'
