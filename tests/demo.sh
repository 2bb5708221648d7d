#!/usr/bin/env bash
# The main job, end to end on this machine: builds homcc and homccd, starts a homccd on a free
# loopback port with an empty cache, compiles a C++ file through homcc twice (cold cache, then
# warm) showing what crossed the wire each time, and checks the object against a local compile.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/homccd.sh
start_homccd warn
echo "homccd listening on $host (cache: $work/server-cache)"

mkdir -p "$work/project/include"
cd "$work/project"
cat >include/greeting.hpp <<'SRC'
#pragma once
#include <string>
inline std::string greeting(const std::string& who) { return "hello, " + who; }
SRC
cat >hello.cpp <<'SRC'
#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>
#include "greeting.hpp"

int main() {
    std::map<std::string, int> counts{{greeting("homcc"), 1}};
    std::cout << counts.begin()->first << " from " << __FILE__ << '\n';
}
SRC
export XDG_CACHE_HOME=$work/client-cache   # homcc's own cache: compiler probes, chunks the host has

compile="g++ -O2 -g -Iinclude -c hello.cpp -o hello.o"
echo
echo "\$ homcc --verbose --host $host $compile     # cold: the server has nothing yet"
"$bin/homcc" --verbose --host "$host" $compile
echo
echo "\$ homcc --verbose --host $host $compile     # warm: same translation unit again"
"$bin/homcc" --verbose --host "$host" $compile
mv hello.o remote.o

echo
echo "\$ $compile     # plain local compile, for comparison"
$compile
if cmp -s hello.o remote.o; then
  echo "remote and local objects are byte-identical ($(stat -c %s hello.o) bytes)"
else
  echo "remote and local objects DIFFER"; exit 1
fi
g++ hello.o -o hello && ./hello
