#!/usr/bin/env bash
# Soak test (exits 1 on a failure): one homccd, CLIENTS homcc clients compiling without pause for
# MINUTES, against a dependency cache bounded well below the working set, so that it evicts all
# the time and clients upload again and again. The result cache is off (homccd
# --no-result-cache): every compile really compiles. The working set: 60 generated C++ files,
# each including 2 to 4 standard headers and a generated header of its own (100 to 300 KB, which
# includes one of 6 shared ones), built with 4 sets of flags; and the C files of zstd's library
# (the copy cargo fetched for zstd-sys, or zlib's source through tests/homccd.sh's fetch_source
# if that is missing).
#
# Every unit is first compiled locally (plain gcc/g++) for the reference objects. Then the clients
# run, each in an order of its own (shuffled with its own seed, again for every pass) and with a
# home, XDG_CACHE_HOME and XDG_RUNTIME_DIR of its own under $work (no shared scan cache, no shared
# slots: the server sees CLIENTS independent clients from one address), and each compile must
# exit 0, print nothing on stderr (homcc prints a line when it falls back to a local compile) and
# give the reference's bytes. The first quarter of the run (at most 30 s) warms up; then the
# clients pause so that homccd is sampled idle (RSS, open fds, threads, job dirs, cache size),
# run the rest of the time (sampled every SOAK_SAMPLE_SECONDS, default 60), stop, and homccd is
# sampled idle again, then stopped with SIGTERM.
#
# Fails (exit 1) on any failed compile, on more job dirs left after the clients stopped than
# homccd keeps for next compiles (limit + queue), on any job dir left once homccd stopped, on
# homccd not exiting 0 on SIGTERM, or on open fds grown by more than SOAK_FD_MARGIN (default 4)
# between the two idle samples. RSS is reported, not judged.
#
# Usage: tests/soak.sh [MINUTES] [CLIENTS]    (default: 30 8; CLIENTS also from SOAK_CLIENTS)
# Environment: SOAK_CACHE_SIZE (homccd's --max-dependency-cache-size, default 4M),
# SOAK_LOG_LEVEL (homccd's, default info; debug also counts evictions exactly),
# HOMCC_BENCH_KEEP=1 keeps the work dir (logs, samples, each client's failures.log).
set -euo pipefail
minutes=${1:-30}
clients=${2:-${SOAK_CLIENTS:-8}}
cache_size=${SOAK_CACHE_SIZE:-4M}
sample_every=${SOAK_SAMPLE_SECONDS:-60}
fd_margin=${SOAK_FD_MARGIN:-4}
[[ $minutes =~ ^[1-9][0-9]*$ && $clients =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: tests/soak.sh [MINUTES] [CLIENTS]    (positive integers)" >&2; exit 2; }
cd "$(dirname "$0")/.."
source tests/homccd.sh

# Stops the client loops and the sampler (each stops its running homcc first) and waits for them
# and for homccd, so that none writes to $work as it is removed; start_homccd's EXIT trap runs it,
# after signalling homccd. Ctrl-C and SIGTERM exit through that trap too.
pids=()
sampler=""
# shellcheck disable=SC2317 # called through $on_exit
stop_clients() {
  [ -z "$sampler" ] || pids+=("$sampler")
  if ((${#pids[@]})); then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  [ -z "$server" ] || wait "$server" 2>/dev/null || true
}
on_exit=stop_clients
trap 'exit 130' INT
trap 'exit 143' TERM
start_homccd "${SOAK_LOG_LEVEL:-info}" --no-config --no-result-cache --max-dependency-cache-size "$cache_size"
log=$work/homccd.log
jobs_dir=$work/server-cache/jobs
read -r limit queue < <(sed -n 's/.*compile slots limit=\([0-9]*\) queue=\([0-9]*\).*/\1 \2/p' "$log")

# --- The working set, in $work/src (the cwd of every compile): one unit per line of
# $work/units, "NAME<TAB>COMPILER<TAB>FLAGS<TAB>SOURCE".
src=$work/src
mkdir -p "$src/gen" "$src/cxx" "$work/ref"
gen_header() { # namespace seed bytes [include]: C++ declarations, about BYTES of them
  awk -v ns="$1" -v seed="$2" -v bytes="$3" -v inc="${4:-}" 'BEGIN {
    srand(seed); print "#pragma once"; if (inc != "") print "#include \"" inc "\""
    print "namespace " ns " {"
    for (k = 0; n < bytes; k++) {
      line = "constexpr unsigned t" k "[] = {"
      for (i = 0; i < 16; i++) line = line int(rand() * 65536) (i < 15 ? ", " : "};")
      line = line "\ninline unsigned f" k "(unsigned x) { return (x * " int(rand() * 1000) "u + t" k "[x % 16]) ^ (x >> " k % 7 "); }"
      line = line "\nstruct s" k " { unsigned a = " k "; unsigned get() const { return f" k "(a); } };"
      print line; n += length(line) + 1
    }
    printf "inline unsigned sum(unsigned x) { return 0"
    for (i = 0; i < k; i += 37) printf " + f%d(x + %d) + s%d{}.get()", i, i, i
    print "; }\n}"
  }'
}
std_headers=(map set unordered_map deque list algorithm memory functional sstream iostream regex
  chrono optional variant tuple array numeric random iomanip bitset)
cxx_flags=("-O2" "-O1 -g" "-O0 -g" "-O2 -std=gnu++20")
for ((g = 0; g < 6; g++)); do gen_header "soak_group_$g" "$((1000 + g))" 65536 >"$src/gen/group_$g.h"; done
for ((n = 0; n < 60; n++)); do
  gen_header "soak_$n" "$n" "$(((100 + n * 37 % 201) * 1024))" "group_$((n % 6)).h" >"$src/gen/h$n.h"
  {
    printf '#include <%s>\n' vector string "${std_headers[n % 20]}" "${std_headers[(n * 7 + 3) % 20]}"
    echo "#include \"../gen/h$n.h\""
    echo "int unit_$n(int n) { std::vector<std::string> v; for (int i = 0; i < n; ++i)" \
      "v.push_back(std::to_string(soak_$n::sum(i))); return int(v.size()) + int(soak_group_$((n % 6))::sum(n)); }"
  } >"$src/cxx/u$n.cpp"
  printf 'u%d\tg++\t%s\tcxx/u%d.cpp\n' "$n" "${cxx_flags[n % 4]}" "$n"
done >"$work/units"
zstd_version=$(awk '/^name = "zstd-sys"/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
zstd_lib=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"zstd-sys-$zstd_version"/zstd \
  -maxdepth 1 -name lib -type d 2>/dev/null | head -1)
if [ -n "$zstd_lib" ]; then
  c_project="zstd $zstd_version (lib/{common,compress,decompress,dictBuilder})"
  mkdir -p "$src/zstd"
  cp -r "$zstd_lib" "$src/zstd/lib"
  c_files=$(cd "$src" && find zstd/lib/common zstd/lib/compress zstd/lib/decompress zstd/lib/dictBuilder -name '*.c' | sort)
  c_include=()
else
  c_project="zlib (*.c of its source)"
  bench_project zlib
  cp -r "$pristine" "$src/zlib"
  c_files=$(cd "$src" && find zlib -maxdepth 1 -name '*.c' | sort)
  c_include=(-I zlib)
fi
mapfile -t c_files <<<"$c_files"
for i in "${!c_files[@]}"; do
  flags="-O1"
  ((i % 2 == 0)) || flags="-O1 -g"
  printf 'c%d\tgcc\t%s\t%s\n' "$i" "$flags${c_include[*]+ ${c_include[*]}}" "${c_files[i]}" >>"$work/units"
done
units=$(wc -l <"$work/units")

# --- The reference objects, compiled locally (-MD for the working set: it changes no byte of
# the object). A unit must compile cleanly: any stderr would count as a failure later.
reference() { # name compiler flags source
  local flags
  read -ra flags <<<"$3"
  (cd "$src" && "$2" "${flags[@]}" -c "$4" -o "$work/ref/$1.o" -MD -MF "$work/ref/$1.d") \
    2>"$work/ref/$1.err" || { echo "local compile of $4 failed:" >&2; cat "$work/ref/$1.err" >&2; return 1; }
  [ ! -s "$work/ref/$1.err" ] || { echo "local compile of $4 is not clean:" >&2; cat "$work/ref/$1.err" >&2; return 1; }
}
ref_start=$EPOCHSECONDS
lanes=$(nproc)
ref_pids=()
for ((lane = 0; lane < lanes; lane++)); do # lane L compiles the units of lines L, L + lanes, ...
  awk -v l="$lane" -v n="$lanes" '(NR - 1) % n == l' "$work/units" | while IFS=$'\t' read -r name cc flags file; do
    reference "$name" "$cc" "$flags" "$file"
  done &
  ref_pids+=($!)
done
for pid in "${ref_pids[@]}"; do wait "$pid"; done
ref_seconds=$((EPOCHSECONDS - ref_start))
# Every file the units read, once (by real path), and their bytes.
read -r ws_files ws_bytes < <(cd "$src" && cat "$work"/ref/*.d | sed -e 's/^[^:]*://' -e 's/\\$//' |
  tr ' ' '\n' | grep -v '^$' | xargs realpath -e | sort -u | xargs stat -c %s |
  awk '{ n++; s += $1 } END { print n, s }')
to_bytes() { numfmt --from=iec "${1%B}"; }
bound=$(to_bytes "$cache_size")
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1048576 }'; }

echo "homccd on $host: limit $limit, queue $queue, --no-result-cache, --max-dependency-cache-size $cache_size"
echo "working set: $units units ($(grep -c $'\tg++\t' "$work/units") C++, $(grep -c $'\tgcc\t' "$work/units") C of $c_project);" \
  "$ws_files distinct files, $(mb "$ws_bytes") ($ws_bytes bytes) against a cache bound of $(mb "$bound") ($bound bytes):" \
  "$(awk -v w="$ws_bytes" -v b="$bound" 'BEGIN { printf "%.1f", w / b }')x"
echo "reference objects compiled locally in $ref_seconds s"
((ws_bytes > 2 * bound)) || { echo "the working set does not exceed the cache bound by 2x: lower SOAK_CACHE_SIZE" >&2; exit 1; }

# --- The clients.
for ((c = 1; c <= clients; c++)); do
  mkdir -p "$work/c$c/home" "$work/c$c/cache" "$work/c$c/run" "$work/c$c/out"
  chmod 700 "$work/c$c/run"
  : >"$work/c$c/failures.log"
done
client() { # number phase end_epoch: compiles until END_EPOCH; counts in $work/cN/counts.PHASE
  local c=$1 phase=$2 end=$3 dir=$work/c$1 compiled=0 failed=0 pass=0 salt child="" rc why name cc flags file
  local -a f
  trap '[ -z "$child" ] || { kill "$child" 2>/dev/null; wait "$child"; }; exit 143' TERM
  echo "0 0" >"$dir/counts.$phase"
  salt=0
  [ "$phase" = warmup ] || salt=10000
  while ((EPOCHSECONDS < end)); do
    pass=$((pass + 1))
    # mawk's srand takes numbers only: the seed tells the client, the phase and the pass apart.
    awk -v seed="$((c * 100000 + salt + pass))" 'BEGIN { srand(seed) } { print rand() "\t" $0 }' \
      "$work/units" | sort -n | cut -f2- >"$dir/order"
    while IFS=$'\t' read -r name cc flags file && ((EPOCHSECONDS < end)); do
      read -ra f <<<"$flags"
      rm -f "$dir/out/$name.o"
      (cd "$src" && HOME=$dir/home XDG_CACHE_HOME=$dir/cache XDG_RUNTIME_DIR=$dir/run \
        exec "$bin/homcc" --no-config --host "$host" "$cc" "${f[@]}" -c "$file" -o "$dir/out/$name.o") \
        </dev/null >"$dir/stdout" 2>"$dir/stderr" &
      child=$!
      rc=0
      wait "$child" || rc=$?
      child=""
      why=""
      if ((rc != 0)); then
        why="exit $rc: $(head -1 "$dir/stderr")"
      elif [ -s "$dir/stderr" ]; then
        why="stderr: $(head -1 "$dir/stderr")"
      elif ! cmp -s "$dir/out/$name.o" "$work/ref/$name.o"; then
        why="object differs from the local compile's"
      fi
      compiled=$((compiled + 1))
      if [ -n "$why" ]; then
        failed=$((failed + 1))
        echo "$(date +%T) $phase c$c $name ($cc $flags $file): $why" >>"$dir/failures.log"
      fi
      echo "$compiled $failed" >"$dir/counts.$phase"
    done <"$dir/order"
  done
}
run_clients() { # phase end_epoch
  local c
  pids=()
  for ((c = 1; c <= clients; c++)); do
    client "$c" "$1" "$2" &
    pids+=($!)
  done
}

# homccd's figures, one line: seconds since the start, the clients' compiles and failures so far,
# RSS kB, open fds, threads, job dirs, cached blobs, their bytes (blobs-v1, uploads in progress
# included), and the disk bytes of the cache dir's distinct files (job roots hold links of blobs
# evicted since).
sample() { # label
  local rss threads fds jobdirs blobs bytes disk compiled failed
  read -r compiled failed < <(cat "$work"/c*/counts.* 2>/dev/null | awk '{ n += $1; f += $2 } END { print n + 0, f + 0 }')
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$server/status")
  threads=$(awk '/^Threads:/ { print $2 }' "/proc/$server/status")
  fds=$(find "/proc/$server/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  jobdirs=$(find "$jobs_dir" -mindepth 1 -maxdepth 1 | wc -l)
  read -r blobs bytes < <(find "$work/server-cache/blobs-v1" -type f -printf '%s\n' 2>/dev/null |
    awk '{ n++; s += $1 } END { print n + 0, s + 0 }')
  disk=$(find "$work/server-cache" -type f -printf '%i %s\n' 2>/dev/null | sort -u | awk '{ s += $2 } END { print s + 0 }')
  printf '%s t=%ds compiles=%s failures=%s rss_kb=%s fds=%s threads=%s job_dirs=%s blobs=%s cache_bytes=%s disk_bytes=%s\n' \
    "$1" $((EPOCHSECONDS - run_start)) "$compiled" "$failed" "$rss" "$fds" "$threads" "$jobdirs" "$blobs" "$bytes" "$disk" |
    tee -a "$work/samples.log"
}
field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1"; } # sample-line key

total=$((minutes * 60))
warmup=$((total / 4 < 30 ? total / 4 : 30))
echo "running $clients clients for $minutes min (warm-up ${warmup} s), each compile checked against the local object"
run_start=$EPOCHSECONDS
run_clients warmup $((run_start + warmup))
wait "${pids[@]}"
pids=()
sleep 2 # homccd scrubs and keeps a job root just after its reply
start_sample=$(sample start)
echo "$start_sample"
main_line=$(wc -l <"$log")
run_clients main $((run_start + total))
(while sleep "$sample_every"; do sample during; done) &
sampler=$!
echo "sampling homccd every $sample_every s to $work/samples.log"
wait "${pids[@]}"
kill "$sampler"
wait "$sampler" 2>/dev/null || true
sampler=""
pids=()
run_seconds=$((EPOCHSECONDS - run_start))
sleep 2
end_sample=$(sample end)
echo "$end_sample"

# homccd stops on SIGTERM, leaving no job dir.
kill -TERM "$server"
status=0
wait "$server" || status=$?
server=""
jobs_after_stop=$(find "$jobs_dir" -mindepth 1 -maxdepth 1 | wc -l)

# --- The report.
compiles=0 failures=0
per_client=()
for ((c = 1; c <= clients; c++)); do
  read -r wd wf <"$work/c$c/counts.warmup"
  read -r md mf <"$work/c$c/counts.main"
  compiles=$((compiles + wd + md))
  failures=$((failures + wf + mf))
  per_client+=("c$c $((wd + md))/$((wf + mf))")
done
compile_lines=$(grep -c 'homcc_server::session: compile client=' "$log" || true)
remote=$(grep 'homcc_server::session: compile client=' "$log" | grep -c 'result=exit 0 cached=false' || true)
others=$(grep 'homcc_server::session: compile client=' "$log" | grep -v 'result=exit 0 cached=false' |
  sed -n 's/.* result=\(.*\) cached=.*/\1/p' | sort | uniq -c | sed 's/^ *//' | paste -sd ';' - || true)
too_many=$(grep -c 'refused: too many connections' "$log" || true)
uploads=$(tail -n +"$((main_line + 1))" "$log" | grep 'homcc_server::session: compile client=' | awk '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "blobs_in") files += kv[2]; if (kv[1] == "bytes_in") bytes += kv[2] } n++ }
  END { printf "%d files, %.1f MB sent (compressed) in %d compiles: %.1f files per compile", files, bytes / 1048576, n, n ? files / n : 0 }')
all_blobs_in=$(grep 'homcc_server::session: compile client=' "$log" | sed -n 's/.* blobs_in=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
# The slowest compiles, and the waits for files other compiles were uploading (homccd gives them
# idle_timeout / 2, then asks its own client).
slowest=$(grep 'homcc_server::session: compile client=' "$log" | awk '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "upload_ms") u = kv[2]; if (kv[1] == "queued_ms") q = kv[2]; if (kv[1] == "ms") m = kv[2] }
    if (m > maxm) maxm = m; if (u > maxu) maxu = u; if (q > maxq) maxq = q; if (u >= 10000) stalls++; summ += m; n++ }
  END { printf "mean %.1f s, slowest %.1f s; longest upload wait %.1f s (%d compiles waited >= 10 s); longest queue wait %.1f s",
    n ? summ / n / 1000 : 0, maxm / 1000, maxu / 1000, stalls, maxq / 1000 }')
evicted_logged=""
grep -q ' DEBUG ' "$log" && evicted_logged=$(grep -c 'evicting cached blob' "$log")
warnings=$(grep -E '^[^ ]+ +(WARN|ERROR)' "$log" | grep -v 'refused: too many connections' |
  sed -E 's/^[^ ]+ +//; s/[0-9a-f]{64}/<digest>/g' | sort | uniq -c | sort -rn | head -5 || true)

start_fds=$(field "$start_sample" fds) end_fds=$(field "$end_sample" fds)
start_rss=$(field "$start_sample" rss_kb) end_rss=$(field "$end_sample" rss_kb)
end_jobs=$(field "$end_sample" job_dirs)
kept_max=$((limit + queue))
echo
echo "=== soak report ==="
echo "minutes run:        $minutes (${run_seconds} s, warm-up ${warmup} s included); clients: $clients"
echo "compiles done:      $compiles ($(awk -v n="$compiles" -v s="$run_seconds" 'BEGIN { printf "%.1f", n * 60 / s }') per minute); per client (done/failed): ${per_client[*]}"
echo "failures:           $failures (must be 0)"
echo "remote vs local:    $remote compiled by homccd, $((compiles - remote)) not (local fallbacks or other answers);" \
  "homccd's compile lines: $compile_lines${others:+, other results: $others}; too-many-connections refusals: $too_many"
echo "homccd RSS:         $start_rss kB at start (idle after warm-up), $end_rss kB at end (idle) ($(awk -v a="$start_rss" -v b="$end_rss" 'BEGIN { printf "%+.0f%%", (b - a) * 100 / a }'))"
echo "homccd open fds:    $start_fds at start, $end_fds at end (allowed growth $fd_margin); threads $(field "$start_sample" threads) -> $(field "$end_sample" threads)"
echo "job dirs left:      $end_jobs after the clients stopped (kept roots, at most limit + queue = $kept_max)," \
  "$jobs_after_stop after homccd stopped (must be 0); homccd's exit status on SIGTERM: $status"
echo "cache:              $(mb "$(field "$end_sample" cache_bytes)") in $(field "$end_sample" blobs) blobs against a bound of $(mb "$bound")" \
  "(largest sampled: $(mb "$(sed -n 's/.* cache_bytes=\([0-9]*\).*/\1/p' "$work/samples.log" | sort -n | tail -1)")); cache dir's disk incl. kept roots: $(mb "$(field "$end_sample" disk_bytes)")"
echo "evictions:          ~$((all_blobs_in - $(field "$end_sample" blobs))) blobs (files uploaded $all_blobs_in, minus those cached at the end)${evicted_logged:+; logged (debug level): $evicted_logged}"
echo "homccd's time:      $slowest"
echo "uploads after warm-up: $uploads (a cache holding the working set would need none)"
[ -z "$warnings" ] || { echo "homccd warnings/errors (count, message):"; echo "$warnings"; }
if ((failures)); then
  echo "failures (first 20; all in $work/c*/failures.log):"
  cat "$work"/c*/failures.log | sort | head -20
fi

verdict=0
((failures == 0)) || { echo "FAIL: $failures compiles failed"; verdict=1; }
((end_jobs <= kept_max)) || { echo "FAIL: $end_jobs job dirs left, more than the $kept_max homccd keeps"; verdict=1; }
((jobs_after_stop == 0)) || { echo "FAIL: $jobs_after_stop job dirs left after homccd stopped"; verdict=1; }
((status == 0)) || { echo "FAIL: homccd exited $status on SIGTERM"; verdict=1; }
((end_fds <= start_fds + fd_margin)) || { echo "FAIL: homccd's open fds grew from $start_fds to $end_fds"; verdict=1; }
((verdict)) || echo "PASS"
exit "$verdict"
