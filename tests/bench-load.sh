#!/usr/bin/env bash
# Benchmark (prints figures; not a test): N clients, each running M compiles as `make -jL` would
# (hosts line ADDR/L), against one `homccd --limit L` with its default queue. Each client has an
# address of its own (127.0.0.2, 127.0.0.3, ... on the loopback of a network namespace made for
# the run, so the server tells them apart: needs root and iproute2) and a home of its own. For
# each N it prints compiles per second, the server's slot utilisation (the compilers' time summed,
# over L x the wall time), how many compiles ran remotely, the busy answers and the longest wait
# in the queue, from homccd's log.
# Usage: tests/bench-load.sh [L] [M] [N...]    (default: 4 16 1 2 4)
set -euo pipefail
limit=${1:-4}
each=${2:-16}
shift $(($# < 2 ? $# : 2))
counts=("$@")
((${#counts[@]})) || counts=(1 2 4)
cd "$(dirname "$0")/.."
ns=homcc-bench-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip netns exec "$ns" ip link set lo up
max=$(printf '%s\n' "${counts[@]}" | sort -n | tail -1)
for ((c = 1; c <= max; c++)); do
  ip netns exec "$ns" ip addr add "127.0.0.$((c + 1))/32" dev lo
done
source tests/homccd.sh
run_in=(ip netns exec "$ns")
listen=0.0.0.0
on_exit="ip netns del $ns"
start_homccd info --no-config --limit "$limit"
port=${host##*:}

# One C++ TU of about half a second at -O2 (standard containers and algorithms), made distinct
# per client and file.
source_text() { # client file
  printf '#include <%s>\n' map string vector algorithm
  for f in 0 1 2 3; do
    echo "std::map<std::string, std::vector<int>> f$f(int n) { std::map<std::string, std::vector<int>> m;" \
      "for (int k = 0; k < n; ++k) { auto& v = m[std::to_string(k * $f)]; v.push_back(k); std::sort(v.begin(), v.end()); } return m; }"
  done
  echo "int client_$1_file_$2;"
}
for ((c = 1; c <= max; c++)); do
  mkdir -p "$work/c$c/home"
  for ((i = 0; i < each; i++)); do source_text "$c" "$i" >"$work/c$c/s$i.cpp"; done
done

client() { # client: M compiles, at most L at a time
  local dir=$work/c$1
  printf '%s\n' $(seq 0 $((each - 1))) | (cd "$dir" && HOME=$dir/home XDG_CACHE_HOME=$dir/home \
    HOMCC_HOSTS="127.0.0.$(($1 + 1)):$port/$limit" xargs -P "$limit" -I{} \
    ip netns exec "$ns" "$bin/homcc" g++ -O2 -c s{}.cpp -o s{}.o 2>>"$dir/stderr.txt")
}

# Warm the server's cache with the system headers, so that every round measures warm compiles.
client 1 >/dev/null
rm -f "$work"/c*/stderr.txt
echo "homccd --limit $limit (queue $limit), $each compiles per client, each client ADDR/$limit"
for n in "${counts[@]}"; do
  before=$(wc -l <"$work/homccd.log")
  start=$(date +%s%N)
  pids=()
  for ((c = 1; c <= n; c++)); do
    client "$c" &
    pids+=($!)
  done
  wait "${pids[@]}"
  end=$(date +%s%N)
  sleep 0.2 # homccd logs a compile just after its reply
  tail -n +"$((before + 1))" "$work/homccd.log" | grep ' compile ' >"$work/round.log" || true
  local_lines=$(cat "$work"/c*/stderr.txt 2>/dev/null | grep -c 'compiling locally' || true)
  rm -f "$work"/c*/stderr.txt
  awk -v n="$n" -v each="$each" -v limit="$limit" -v wall_ms=$(((end - start) / 1000000)) \
    -v fallbacks="$local_lines" '
    /result=exit/ { ran++; match($0, /compile_ms=[0-9]+/); busy_ms += substr($0, RSTART + 11, RLENGTH - 11)
                    match($0, /queued_ms=[0-9]+/); q = substr($0, RSTART + 10, RLENGTH - 10); if (q > maxq) maxq = q }
    /result=refused: busy/ { refused++ }
    END {
      printf "N=%d: %d compiles in %.2f s = %.2f compiles/s; slot utilisation %.0f %%; remote %d of %d, local %d; busy answers %d; longest queue wait %d ms\n",
        n, n * each, wall_ms / 1000, n * each * 1000 / wall_ms, 100 * busy_ms / (limit * wall_ms), ran, n * each, fallbacks, refused, maxq
    }' "$work/round.log"
done
