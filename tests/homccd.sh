# Sourced by demo.sh and bench.sh: builds the release binaries and starts a homccd on a free
# loopback port with an empty cache in a fresh work dir. Sets $bin, $work, $host; stops the
# server and removes $work on exit. Usage: start_homccd LOG_LEVEL
start_homccd() {
  cargo build --release --bins --quiet
  bin=$PWD/target/release
  work=$(mktemp -d)
  server=""
  trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
  "$bin/homccd" --listen 127.0.0.1 --port 0 --cache-dir "$work/server-cache" --log-level "$1" 2>"$work/homccd.log" &
  server=$!
  until grep -q '^listening on' "$work/homccd.log"; do
    kill -0 "$server" 2>/dev/null || { cat "$work/homccd.log"; exit 1; }
    sleep 0.05
  done
  host=$(sed -n 's/^listening on //p' "$work/homccd.log")
}
