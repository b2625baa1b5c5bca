#!/usr/bin/env bash
# Demo from a fresh Debian 12 machine (as root): installs what is missing,
# builds longctx, prints what it sees of this machine and which kernel serves
# each op, rotates a 128k-token batch with YaRN-scaled RoPE and runs causal
# attention over it (timing and error against double-precision oracles), runs
# one long-context attention layer as an engine does (LoRA projections,
# LongRoPE, a bf16 KV cache, a 32k-token prefill and decode steps that cross
# the original context), then benchmarks every op on the best ISA against the
# machine's measured copy bandwidth and FMA peak (a few minutes on 2 cores).
# Extra arguments go to longctx-bench (e.g. `--isa all`, `--seq 16384`, `rope`).
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
echo
./build-demo/examples/longctx-attention-layer 32768 4
echo
./build-demo/bench/longctx-bench --isa best --mb 128 --reps 3 --seq 4096 --shape llama3-8b "$@"
