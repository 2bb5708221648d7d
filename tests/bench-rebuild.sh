#!/usr/bin/env bash
# Benchmark (prints figures; not a test): what a real project's build through homcc costs the
# client's CPU. Builds the project twice through homcc against a local homccd (a first build with
# empty caches, then `make clean` and a build again), and prints for each the CPU (user + sys) of
# homcc and its children (the dependency scans) over the compile commands, next to the CPU of a
# plain `-M` scan of each of the same compiles; and homccd's own time per compile beyond the
# compiler (its session time minus the compiler's run, any wait for a slot and the waits for
# uploads).
#
# Targets (issue 12): first build <= 1.1x the plain scans, rebuild <= 0.15x, homccd <= 5 ms.
# HOMCC_NO_INCLUDE_CLOSURE=1 in the environment measures the compiler's scans instead of the
# include closure (docs/include-closure.md).
# homccd runs on core 1, the builds and the plain scans on core 0 (taskset): the client's CPU is
# measured as on a machine of its own, not inflated by the server's compiles beside it.
#
# Usage: tests/bench-rebuild.sh [git|zlib]    (default git: 2.39, ~450 C files, -MMD -MP)
# The project's source comes from `apt-get source` (deb-src is added to the apt sources if
# missing) and is kept in $HOMCC_BENCH_SRC (default /var/cache/homcc-tests/src).
set -euo pipefail
project=${1:-git}
cd "$(dirname "$0")/.."
source tests/homccd.sh

bench_project "$project"

# homccd (and its compiles) on one core, the client (the builds, the plain scans) on the other:
# on this machine they are the client's laptop and the build server, and a client's CPU time is
# not to be inflated by the server's compiles on the same core.
run_in=(taskset -c 1)
start_homccd debug
taskset -cp 0 $$ >/dev/null
export XDG_CACHE_HOME=$work/client-cache
cp -a "$pristine" "$work/project"
cd "$work/project"

# Every homcc run is timed with its children (wait4's rusage, in microseconds), its arguments kept
# as JSON; the compile commands (-c) are kept apart from the links, which run locally.
cat >"$work/timed.py" <<'PY'
import json, os, sys
log, argv = sys.argv[1], sys.argv[2:]
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(log, "a") as f:
    f.write(json.dumps([usage.ru_utime + usage.ru_stime, argv]) + "\n")
sys.exit(os.waitstatus_to_exitcode(status))
PY
printf '#!/bin/sh\nexec python3 "%s" "$HOMCC_BENCH_LOG" "%s" --host "%s/4" gcc "$@"\n' \
  "$work/timed.py" "$bin/homcc" "$host" >"$work/cc"
chmod +x "$work/cc"
HOMCC_BENCH_LOG=$work/configure.log CC=$work/cc $configure >/dev/null

build() { # log: one make through homcc (--verbose: each compile's line says homcc's own CPU)
  export HOMCC_BENCH_LOG=$1
  : >"$1"
  HOMCC_VERBOSE=1 make -j2 CC="$work/cc" "${make_args[@]}" all >/dev/null 2>"${1%.log}.err" ||
    { cat "${1%.log}.err"; exit 1; }
}
server_ms() { # from the Nth line of homccd's log on: homccd's own ms per compile (without the
  # compiler's run, the wait for a slot and the waits for uploads), and by phase
  tail -n +"$1" "$work/homccd.log" | grep ' compile ' |
    grep -o 'upload_ms=[0-9]* queued_ms=[0-9]* compile_ms=[0-9]* ms=[0-9]*' |
    tr -c '0-9\n' ' ' | awk '{print $4 - $3 - $2 - $1}' | sort -n |
    awk '{own[NR] = $1; sum += $1} END {printf "%.1f ms, median %d ms (over %d compiles", sum / NR, own[int((NR + 1) / 2)], NR}'
  tail -n +"$1" "$work/homccd.log" | grep 'compile phases' | grep -o '[a-z]*=[0-9.]*ms' | tr '=' ' ' |
    awk '{sum[$1] += $2; if (!($1 in n)) order[++k] = $1; n[$1]++}
      END {printf "; mean ms by phase:"; for (i = 1; i <= k; i++) printf " %s %.2f", order[i], sum[order[i]] / n[order[i]]; printf ")"}'
}

# The plain scans: each compile command of the first build with its outputs and dependency-file
# flags taken out and -M added, run one after the other, after each build (their mean counts:
# this machine's speed drifts); then the figures.
cat >"$work/figures.py" <<'PY'
import json, os, shutil, sys
work = sys.argv[2]
def compiles(log):
    entries = [json.loads(line) for line in open(os.path.join(work, log))]
    return [(cpu, argv) for cpu, argv in entries if "-c" in argv]
def plain_scan(argv):
    args = argv[argv.index("--host") + 2:]  # gcc and its arguments
    out, skip = [shutil.which(args[0])], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in ("-o", "-MF", "-MQ", "-MT"):
            skip = True
        elif a not in ("-c", "-MMD", "-MD", "-MP"):
            out.append(a)
    return out + ["-M"]
if sys.argv[1] == "scans":
    total = 0.0
    for _, argv in compiles("first.log"):
        scan = plain_scan(argv)
        quiet = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                 (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
        pid = os.posix_spawn(scan[0], scan, os.environ, file_actions=quiet)
        _, status, usage = os.wait4(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, scan
        total += usage.ru_utime + usage.ru_stime
    with open(os.path.join(work, "scans.txt"), "a") as f:
        f.write(f"{total}\n")
    sys.exit()
project, first_server, rebuild_server = sys.argv[3:]
runs = [float(line) for line in open(os.path.join(work, "scans.txt"))]
scans = sum(runs) / len(runs)
def own(log):
    # homcc's own CPU, from the --verbose lines ("cpu: homcc X ms, compiler Y ms").
    total = 0.0
    for line in open(os.path.join(work, log.replace(".log", ".err")), errors="replace"):
        if "; cpu: homcc " in line:
            total += float(line.split("; cpu: homcc ")[1].split(" ms")[0]) / 1000
    return total
def listed(log):
    # How each compile's files were listed, from the --verbose lines.
    counts = {"include closure": 0, "scan cached": 0, "scanned": 0}
    for line in open(os.path.join(work, log.replace(".log", ".err")), errors="replace"):
        for how in counts:
            if f"({how}" in line:
                counts[how] += 1
                break
    return ", ".join(f"{n} {how}" for how, n in counts.items())
def cpu(log, server):
    entries = compiles(log)
    total = sum(c for c, _ in entries)
    return (f"{total:.2f} s over {len(entries)} compiles = {total / scans:.2f}x the scans "
            f"(homcc itself {own(log):.2f} s; {listed(log)}); homccd's own time per compile {server}")
print(f"project: {project} ({len(compiles('first.log'))} compiles)")
print(f"plain -M scans:   {scans:.2f} s (mean of {' and '.join(f'{r:.2f}' for r in runs)})")
print(f"first build:      {cpu('first.log', first_server)}")
print(f"rebuild (clean):  {cpu('rebuild.log', rebuild_server)}")
PY

lines=$(wc -l <"$work/homccd.log")
build "$work/first.log"
first_server=$(server_ms "$((lines + 1))")
python3 "$work/figures.py" scans "$work"
make clean >/dev/null 2>&1
lines=$(wc -l <"$work/homccd.log")
build "$work/rebuild.log"
rebuild_server=$(server_ms "$((lines + 1))")
python3 "$work/figures.py" scans "$work"
python3 "$work/figures.py" report "$work" "$project" "$first_server" "$rebuild_server"
