#!/usr/bin/env bash
# What a compile costs through SSH against TCP, on loopback: starts an sshd of its own (its own
# config, host key and authorized key in a temp dir, on a free 127.0.0.1 port), a homccd on
# 127.0.0.1, and compiles a 2-line C file RUNS times through each (after one warm-up each that
# fills homccd's cache and, for SSH, starts the master connection); prints the median and mean
# wall time of `homcc` per compile for both, and their difference; then the same for a C++ file
# that takes g++ -O2 about 200 ms. Needs root (sshd), and
# openssh-server (installed when missing).
# Usage: tests/bench-ssh.sh [RUNS]   (default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}

if [ ! -x /usr/sbin/sshd ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
fi
cargo build --release --bins -q
bin=$PWD/target/release

dir=$(mktemp -d)
cleanup() {
  [ -n "${homccd:-}" ] && kill "$homccd" 2>/dev/null || true
  [ -n "${sshd:-}" ] && kill "$sshd" 2>/dev/null || true
  for socket in "$dir"/home/homcc/run/ssh-*; do
    [ -S "$socket" ] && ssh -o ControlPath="$socket" -O exit bench 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$dir/user_key"
cp "$dir/user_key.pub" "$dir/authorized_keys"
mkdir -p /run/sshd "$dir/home" "$dir/src"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
EOF
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
cat >"$dir/ssh_config" <<EOF
Host *
  Port $port
  IdentityFile $dir/user_key
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
EOF
/usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
sshd=$!
"$bin/homccd" --no-config --listen 127.0.0.1 --port 0 --cache-dir "$dir/cache" 2>"$dir/homccd.log" &
homccd=$!
for _ in $(seq 100); do
  grep -q "Server listening" "$dir/sshd.log" && grep -q "listening on" "$dir/homccd.log" && break
  sleep 0.1
done
addr=$(sed -n 's/^listening on //p' "$dir/homccd.log")
hport=${addr##*:}

printf '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n' >"$dir/src/a.c"
printf '#include <map>\n#include <string>\nint f(std::map<std::string, int> &m) { return m["x"]; }\n' >"$dir/src/b.cpp"
export HOME=$dir/home XDG_CACHE_HOME=$dir/home HOMCC_SSH_OPTIONS="-F $dir/ssh_config"
unset XDG_RUNTIME_DIR

# Microseconds of one compile ($compile) through host line $1.
once() {
  start=$(date +%s%N)
  (cd "$dir/src" && "$bin/homcc" --no-local-compilation --host "$1" $compile)
  echo $((($(date +%s%N) - start) / 1000))
}
stats() { sort -n | awk '{a[NR]=$1; s+=$1} END {printf "median %.1f ms, mean %.1f ms", a[int((NR+1)/2)]/1000, s/NR/1000}'; }

tcp_line="127.0.0.1:$hport"
ssh_line="root@127.0.0.1:$hport"
# One warm-up each (homccd's cache; the SSH master connection), then the two in turn, so that
# whatever else the machine does weighs on both alike.
for compile in "gcc -c a.c -o a.o" "g++ -O2 -c b.cpp -o b.o"; do
  once "$tcp_line" >/dev/null
  once "$ssh_line" >/dev/null
  : >"$dir/tcp" && : >"$dir/ssh"
  for _ in $(seq "$runs"); do
    once "$tcp_line" >>"$dir/tcp"
    once "$ssh_line" >>"$dir/ssh"
  done
  echo "$compile, per compile over $runs runs each (alternating), loopback:"
  echo "  tcp  $tcp_line       $(stats <"$dir/tcp")"
  echo "  ssh  $ssh_line  $(stats <"$dir/ssh")"
  paste "$dir/ssh" "$dir/tcp" | awk '{print $1 - $2}' | sort -n |
    awk '{a[NR]=$1} END {printf "  ssh - tcp, run by run: median %.1f ms\n", a[int((NR+1)/2)]/1000}'
done
echo "  sshd logins: $(grep -c 'Accepted publickey' "$dir/sshd.log") (one master connection for all compiles)"
