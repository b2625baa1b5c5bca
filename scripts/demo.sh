#!/usr/bin/env bash
# Demo from a fresh Debian 12 machine (as root): installs what is missing,
# builds longctx, prints what it sees of this machine and which kernel serves
# each op, rotates a 128k-token batch with YaRN-scaled RoPE (timing and error
# against a double-precision oracle), then benchmarks conversion and RoPE
# against the machine's measured copy bandwidth and FMA peak.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
if [ ! -f build-demo/build.ninja ]; then
    meson setup build-demo -Dbuildtype=release -Dtests=false >/dev/null
fi
ninja -C build-demo >/dev/null
./build-demo/examples/longctx-info
echo
./build-demo/examples/longctx-rope-demo 131072
./build-demo/bench/longctx-bench --mb 128 --reps 5 --seq 16384 --shape llama3-8b "$@"
