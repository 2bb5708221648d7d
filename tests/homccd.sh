# Sourced by demo.sh and the bench-*.sh scripts: builds the release binaries and starts a homccd
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

# A Debian source package's pristine source, fetched once with `apt-get source` (deb-src is added
# to the apt sources if missing) into $HOMCC_BENCH_SRC (default /var/cache/homcc-tests/src).
fetch_source() { # package: prints the unpacked source dir
  local package=$1 dir src_cache=${HOMCC_BENCH_SRC:-/var/cache/homcc-tests/src}
  dir=$(find "$src_cache" -maxdepth 1 -type d -name "$package-*" 2>/dev/null | head -1)
  if [ -z "$dir" ]; then
    mkdir -p "$src_cache"
    if ! apt-get source --print-uris "$package" >/dev/null 2>&1; then
      sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
      apt-get update -qq
    fi
    (cd "$src_cache" && apt-get source -qq "$package" >/dev/null 2>&1) || true
    dir=$(find "$src_cache" -maxdepth 1 -type d -name "$package-*" | head -1)
    [ -n "$dir" ] || { echo "cannot get the source of $package (apt-get source $package)" >&2; exit 1; }
  fi
  echo "$dir"
}


# The benchmarks' real projects (git 2.39: ~450 C files built with -MMD -MP; zlib): sets
# $pristine (the source), $configure and $make_args.
bench_project() { # git|zlib
  case $1 in
  git)
    dpkg -s zlib1g-dev >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zlib1g-dev >/dev/null
    pristine=$(fetch_source git)
    configure=true
    # COMPUTE_HEADER_DEPENDENCIES=yes: git's auto-detection runs $(CC) and takes any output for
    # "unsupported", and homcc --verbose prints a line; git's own build compiles with -MMD -MP.
    make_args=(COMPUTE_HEADER_DEPENDENCIES=yes NO_CURL=1 NO_EXPAT=1 NO_GETTEXT=1 NO_TCLTK=1 NO_PERL=1 NO_PYTHON=1 CFLAGS="-O2 -g")
    ;;
  zlib)
    pristine=$(fetch_source zlib)
    configure="./configure"
    make_args=(CFLAGS="-O2 -g -MMD -MP")
    ;;
  *) echo "unknown project $1 (git or zlib)" >&2; exit 2 ;;
  esac
}
