#!/usr/bin/env bash
# Benchmark (prints figures; not a test): what homccd's result cache saves on a real project.
# Builds the project locally (`make -j2`, plain gcc), then through homcc against a local homccd
# with an empty cache: a first build, `make clean`, and a rebuild. For each: wall time, homccd's
# CPU (its own and its compilers', from /proc), the bytes homccd received, and how many compiles
# were answered from the result cache.
#
# Target (issue 16): the rebuild takes at most a quarter of the local build's wall time.
#
# Usage: tests/bench-result-cache.sh [git|zlib]    (default git: 2.39, ~450 C files)
set -euo pipefail
project=${1:-git}
cd "$(dirname "$0")/.."
source tests/homccd.sh

bench_project "$project"

start_homccd info
export XDG_CACHE_HOME=$work/client-cache

# CPU seconds of homccd and its waited-for children (the compilers) so far.
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15 + $16 + $17) / hz}' "/proc/$server/stat"
}
# From the Nth line of homccd's log on: bytes received, compiles, and cached ones.
server_log() {
  tail -n +"$1" "$work/homccd.log" | grep ' compile ' | awk '
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "bytes_in") bytes += kv[2]
        if ($i == "cached=true") cached++ } n++ }
    END { printf "%d compiles, %d cached, %.1f MB received", n, cached, bytes / 1e6 }'
}
wall() { # command...: runs it, prints its wall seconds
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/make.err" || { cat "$work/make.err" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

cp -a "$pristine" "$work/local"
(cd "$work/local" && $configure >/dev/null)
local_s=$(cd "$work/local" && wall make -j2 CC=gcc "${make_args[@]}" all)

cp -a "$pristine" "$work/project"
cd "$work/project"
printf '#!/bin/sh\nexec "%s" --host "%s/4" gcc "$@"\n' "$bin/homcc" "$host" >"$work/cc"
chmod +x "$work/cc"
CC=$work/cc $configure >/dev/null

through_homcc() { # label
  local lines cpu0 s
  lines=$(($(wc -l <"$work/homccd.log") + 1))
  cpu0=$(server_cpu)
  s=$(wall make -j2 CC="$work/cc" "${make_args[@]}" all)
  printf '%-16s %7.1f s wall (%.2fx local); homccd CPU %.1f s; %s\n' "$1:" "$s" \
    "$(echo "$s / $local_s" | bc -l)" "$(echo "$(server_cpu) - $cpu0" | bc -l)" "$(server_log "$lines")"
  last=$s
}

echo "project: $project; make -j2; homccd on 127.0.0.1, limit 4 per client"
printf '%-16s %7.1f s wall\n' "local build:" "$local_s"
through_homcc "first build"
make clean >/dev/null 2>&1
through_homcc "rebuild (clean)"
if [ "$(echo "$last <= $local_s / 4" | bc)" = 1 ]; then
  echo "target met: the rebuild takes at most a quarter of the local build"
else
  echo "target NOT met: the rebuild takes more than a quarter of the local build"
fi
