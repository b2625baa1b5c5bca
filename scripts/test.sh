#!/usr/bin/env bash
# Everything CI checks, from a fresh Debian 12 machine (as root):
#   1. installs missing packages (scripts/deps.sh --test)
#   2. native build (every x86 ISA the compiler has, CUDA when nvcc exists)
#      and the whole suite: each ISA this CPU runs, the others reported skipped
#   2b. the CUDA suite on a CPU emulation of the CUDA runtime (tools/cuda_emu)
#   3. an AddressSanitizer + UndefinedBehaviorSanitizer build running the suite
#      (built without CUDA: also proves the library builds and passes without it)
#   4. the aarch64 cross build running the suite under qemu-aarch64 (NEON)
#   5. install, then out-of-tree consumers through pkg-config and CMake
#   6. a quick longctx-bench run (smoke test; figures are not assertions)
# Ends with one line "N passed, N failed, N skipped" over all builds.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/deps.sh --test || exit 1

fail=0
logs=()
failed_steps=()
step() { printf '\n=== %s ===\n' "$*"; }
setup() { # dir, args...
    local dir=$1; shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1
    else
        rm -rf "$dir"
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1
    fi || { cat "$dir.setup.log"; return 1; }
    grep -A8 '^  Kernels' "$dir.setup.log" || true
}
build_and_test() { # dir, label
    local dir=$1 label=$2
    if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
        tail -50 "$dir.build.log"
        echo "$label: BUILD FAILED"
        failed_steps+=("$label build")
        fail=1
        return 1
    fi
    meson test -C "$dir" --print-errorlogs --num-processes 2 || { fail=1; failed_steps+=("$label tests"); }
    logs+=("$dir/meson-logs/testlog.json")
}

step "native build and tests"
if setup build-ci --prefix="$root/_install" -Dbuildtype=release -Dwerror=true; then
    build_and_test build-ci native
    if grep -q "LCX_HAVE_CUDA 1" build-ci/lcx_config.h; then
        echo "CUDA: kernels/cuda compiled with $(command -v nvcc)"
    elif command -v nvcc >/dev/null; then
        echo "CUDA: nvcc present but the CUDA backend was not built" && fail=1
    else
        echo "CUDA: no nvcc on this machine; backend not built"
    fi
else
    fail=1; failed_steps+=("meson setup")
fi

step "CUDA suite on the emulated CUDA runtime (tools/cuda_emu; no GPU needed)"
if grep -q "LCX_HAVE_CUDA 1" build-ci/lcx_config.h 2>/dev/null && [ "$(uname -m)" = x86_64 ] &&
        command -v g++ >/dev/null; then
    if bash tools/cuda_emu/run.sh build-ci build-ci/cuda_emu >build-ci/cuda_emu.log 2>&1; then
        grep -E '^\[  PASSED  \]' build-ci/cuda_emu.log | sed 's/^/CUDA (emulated): /'
    else
        tail -40 build-ci/cuda_emu.log
        fail=1; failed_steps+=("CUDA emulated suite")
    fi
else
    echo "skipped: needs the CUDA backend built, x86-64 and g++"
fi

step "ASan + UBSan build and tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if setup build-ci-asan -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
        -Dcuda=disabled -Dbench=false; then
    build_and_test build-ci-asan sanitizers
else
    fail=1; failed_steps+=("meson setup")
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

step "aarch64 cross build, tests under qemu-aarch64"
if setup build-ci-aarch64 --cross-file cross/aarch64-linux-gnu.ini -Dbuildtype=release -Dcuda=disabled \
        -Dbench=false; then
    build_and_test build-ci-aarch64 aarch64
else
    fail=1; failed_steps+=("meson setup")
fi

step "install and out-of-tree consumers"
rm -rf _install
if meson install -C build-ci --quiet && bash scripts/check-outoftree.sh _install; then :; else fail=1; failed_steps+=("install/out-of-tree"); fi

step "longctx-bench smoke run"
./build-ci/bench/longctx-bench --quick --json build-ci/bench.json convert || { fail=1; failed_steps+=("bench smoke"); }

step "summary"
python3 - "${logs[@]}" <<'PY' || fail=1
import json, sys
p = f = s = 0
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        res = r.get("result")
        if res == "OK": p += 1
        elif res == "SKIP": s += 1
        else: f += 1
print(f"{p} passed, {f} failed, {s} skipped")
sys.exit(1 if f else 0)
PY
if [ ${#failed_steps[@]} -gt 0 ]; then echo "failed steps: ${failed_steps[*]}"; fi
[ $fail -eq 0 ] && echo "CI: PASS" || echo "CI: FAIL"
exit $fail
