#!/usr/bin/env bash
# Benchmark (prints figures; not a test): what a real project's build through homcc costs the
# client's CPU. Builds the project twice through homcc against a local homccd (a first build with
# empty caches, then `make clean` and a build again), and prints for each the CPU (user + sys) of
# homcc and its children (the dependency scans) over the compile commands, next to the CPU of a
# plain `-M` scan of each of the same compiles; and homccd's own time per compile beyond the
# compiler (its session time minus the compiler's run and any wait for a slot).
#
# Targets (issue 12): first build <= 1.1x the plain scans, rebuild <= 0.15x, homccd <= 5 ms.
#
# Usage: tests/bench-rebuild.sh [git|zlib]    (default git: 2.39, ~450 C files, -MMD -MP)
# The project's source comes from `apt-get source` (deb-src is added to the apt sources if
# missing) and is kept in $HOMCC_BENCH_SRC (default /var/cache/homcc-tests/src).
set -euo pipefail
project=${1:-git}
cd "$(dirname "$0")/.."
src_cache=${HOMCC_BENCH_SRC:-/var/cache/homcc-tests/src}

# The project's pristine source, fetched once.
fetch_source() { # package: prints the unpacked source dir
  local package=$1 dir
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

case $project in
git)
  dpkg -s zlib1g-dev >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zlib1g-dev >/dev/null
  pristine=$(fetch_source git)
  configure=true
  make_args=(NO_CURL=1 NO_EXPAT=1 NO_GETTEXT=1 NO_TCLTK=1 NO_PERL=1 NO_PYTHON=1 CFLAGS="-O2 -g")
  ;;
zlib)
  pristine=$(fetch_source zlib)
  configure="./configure"
  make_args=(CFLAGS="-O2 -g -MMD -MP")
  ;;
*) echo "unknown project $project (git or zlib)" >&2; exit 2 ;;
esac

source tests/homccd.sh
start_homccd info
export XDG_CACHE_HOME=$work/client-cache
cp -a "$pristine" "$work/project"
cd "$work/project"

# Every homcc run is timed with its children (wait4's rusage, in microseconds); the compile
# commands (-c) are kept apart from the links, which run locally.
cat >"$work/timed.py" <<'PY'
import os, sys
log, argv = sys.argv[1], sys.argv[2:]
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(log, "a") as f:
    f.write(f"{usage.ru_utime + usage.ru_stime:.6f} {' '.join(argv)}\n")
sys.exit(os.waitstatus_to_exitcode(status))
PY
cat >"$work/cc" <<EOF
#!/bin/sh
exec python3 "$work/timed.py" "\$HOMCC_BENCH_LOG" "$bin/homcc" --host "$host/4" gcc "\$@"
EOF
chmod +x "$work/cc"
HOMCC_BENCH_LOG=$work/configure.log CC=$work/cc $configure >/dev/null

build() { # log: one make through homcc
  export HOMCC_BENCH_LOG=$1
  : >"$1"
  make -j2 CC="$work/cc" "${make_args[@]}" all >/dev/null 2>"$work/make.err" ||
    { cat "$work/make.err"; exit 1; }
}
compiles() { # log: its compile commands
  grep -E ' -c( |$)' "$1"
}
server_ms() { # from the Nth line of homccd's log on: homccd's own ms per compile
  tail -n +"$1" "$work/homccd.log" | grep ' compile ' | grep -o 'queued_ms=[0-9]* compile_ms=[0-9]* ms=[0-9]*' |
    tr -c '0-9\n' ' ' | awk '{own += $3 - $2 - $1; n++} END {printf "%.1f ms (over %d compiles)", own / n, n}'
}

lines=$(wc -l <"$work/homccd.log")
build "$work/first.log"
first_server=$(server_ms "$((lines + 1))")
make clean >/dev/null 2>&1
lines=$(wc -l <"$work/homccd.log")
build "$work/rebuild.log"
rebuild_server=$(server_ms "$((lines + 1))")

# The plain scans: each compile command with its outputs and dependency-file flags taken out
# and -M added, run one after the other.
compiles "$work/first.log" | sed 's/^.* --host [^ ]* //' |
  awk '{
    out = $1
    for (i = 2; i <= NF; i++) {
      if ($i == "-o" || $i == "-MF" || $i == "-MQ" || $i == "-MT") { i++; continue }
      if ($i == "-c" || $i == "-MMD" || $i == "-MD" || $i == "-MP") continue
      out = out " " $i
    }
    print out " -M"
  }' >"$work/scans.txt"
: >"$work/scans.log"
while read -r -a scan; do
  python3 "$work/timed.py" "$work/scans.log" "$(command -v "${scan[0]}")" "${scan[@]:1}" >/dev/null
done <"$work/scans.txt"
scans=$(awk '{c += $1} END {printf "%.2f", c}' "$work/scans.log")

cpu() { # log: CPU seconds of its compile commands, their number and their ratio to the scans
  compiles "$1" | awk -v p="$scans" '{c += $1; n++} END {printf "%.2f s over %d compiles = %.2fx the scans", c, n, c / p}'
}
echo "project: $project ($(wc -l <"$work/scans.txt") compiles)"
echo "plain -M scans:   $scans s"
echo "first build:      $(cpu "$work/first.log"); homccd's own time per compile $first_server"
echo "rebuild (clean):  $(cpu "$work/rebuild.log"); homccd's own time per compile $rebuild_server"
