#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 20) from its seed corpus in
# tests/fuzz/corpus; new inputs go to a scratch corpus, crashes to tests/fuzz/artifacts (keep a
# crash's input in the corpus once it is fixed). Needs the nightly toolchain and cargo-fuzz
# (installed from crates.io if missing). Usage: tests/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
seconds=${1:-20}
shift || true
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
targets=("$@")
((${#targets[@]})) || targets=($(cargo +nightly fuzz list --fuzz-dir tests/fuzz))
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  echo "fuzzing $target for $seconds s"
  status=0
  cargo +nightly fuzz run --fuzz-dir tests/fuzz -O "$target" "$scratch/$target" tests/fuzz/corpus/"$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$scratch/$target.log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|thread|INFO: Seed)' "$scratch/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$scratch/$target.log"
    echo "fuzz target $target failed (above; an input that crashed it is left in tests/fuzz/artifacts/$target)"
    exit 1
  fi
done
