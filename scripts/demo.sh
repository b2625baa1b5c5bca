#!/usr/bin/env bash
# Demo from a fresh Debian 12 machine (as root): installs what is missing,
# builds longctx, prints what it sees of this machine and which kernel
# serves each op, then benchmarks dtype conversion against the machine's
# measured copy bandwidth and FMA peak.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
if [ ! -f build-demo/build.ninja ]; then
    meson setup build-demo -Dbuildtype=release -Dtests=false >/dev/null
fi
ninja -C build-demo >/dev/null
./build-demo/examples/longctx-info
./build-demo/bench/longctx-bench --mb 128 --reps 7 "$@"
