# Sourced by demo.sh, bench.sh, bench-verify.sh and bench-load.sh: builds the release binaries and starts a homccd
# on a free port of $listen (default 127.0.0.1) with an empty cache in a fresh work dir, under the
# command in the array $run_in if set (e.g. `ip netns exec NS`). Sets $bin, $work, $host; stops
# the server, runs $on_exit if set and removes $work on exit.
# Usage: start_homccd LOG_LEVEL [HOMCCD_ARGS...]
start_homccd() {
  local level=$1
  shift
  cargo build --release --bins --quiet
  bin=$PWD/target/release
  work=$(mktemp -d)
  server=""
  trap '[ -n "$server" ] && kill "$server" 2>/dev/null; ${on_exit:-true}; [ -n "${HOMCC_BENCH_KEEP:-}" ] || rm -rf "$work"' EXIT
  : >"$work/homccd.log" # there before the server's shell opens it, for the wait below
  ${run_in[@]+"${run_in[@]}"} "$bin/homccd" --listen "${listen:-127.0.0.1}" --port 0 \
    --cache-dir "$work/server-cache" --log-level "$level" "$@" 2>"$work/homccd.log" &
  server=$!
  until grep -q '^listening on' "$work/homccd.log"; do
    kill -0 "$server" 2>/dev/null || { cat "$work/homccd.log"; exit 1; }
    sleep 0.05
  done
  host=$(sed -n 's/^listening on //p' "$work/homccd.log")
}

# Writes tu.cpp in the current dir: a typical C++ TU of the standard library's headers (~230
# files), as the benchmarks compile it.
write_tu() {
  printf '#include <%s>\n' map string iostream vector algorithm memory functional unordered_map sstream >tu.cpp
  echo 'int main() { std::map<std::string, int> m{{"a", 1}}; std::cout << m.size() << "\n"; }' >>tu.cpp
}
