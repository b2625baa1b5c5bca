#!/bin/sh
# Run the CUDA test suite (tests/test_cuda.c) on the CPU emulation of the CUDA
# runtime in inc/cuda_runtime.h, for machines without a GPU (x86-64 Linux, g++
# with C++20, python3).
#
#   tools/cuda_emu/run.sh BUILD_DIR [OUT_DIR]
#
# BUILD_DIR: a meson build of this tree with the CUDA backend and the tests
# (e.g. meson setup build-cuda -Dcuda=enabled -Dtests=true; ninja -C build-cuda);
# its lcx_config.h and liblongctx.a (CPU parts and the CUDA dispatch) are used,
# while every kernels/cuda/*.cu is rewritten by prep.py and compiled as C++.
# Environment: LONGCTX_TEST_SEED (replay a seed), EMU_SCHED 0/1/2 (thread order
# forward/reverse/random at barriers), EMU_POISON (shared-memory fill byte),
# EMU_ULP=1 (device math off by up to CUDA's documented error), EMU_OPTIN
# (opt-in shared memory bytes, default an H100's), EMU_THREADS=1 (one host
# thread per CUDA thread), SM80=0 (kernels built for a pre-sm_80 target: the
# SIMT LoRA and attention paths), SM90A=0 (no sm_90a build: no wgmma kernel;
# default: as SM80), EMU_NO_MEMPOOL=1 (a device without
# stream-ordered memory pools).
set -e
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [OUT_DIR]" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
M=$(cd "$HERE/../.." && pwd)
B=$(cd "$1" && pwd)
F=${2:-$B/cuda_emu}
grep -q "LCX_HAVE_CUDA 1" "$B/lcx_config.h" || { echo "$B was built without the CUDA backend" >&2; exit 2; }
[ -f "$B/tests/liblcx_test_util.a" ] || { echo "$B has no tests (-Dtests=true)" >&2; exit 2; }
mkdir -p "$F/obj" "$F/tree/kernels/cuda" "$F/tree/kernels/common" "$F/tree/lib/internal"
# a mirror of the headers the sources include by relative path
for h in "$M"/kernels/cuda/*.cuh; do
  python3 "$HERE/prep.py" "$h" "$F/tree/kernels/cuda/$(basename "$h")" 2>>"$F/prep.log"
done
cp "$M"/kernels/common/*.h "$F/tree/kernels/common/"
cp "$M"/lib/internal/*.h "$F/tree/lib/internal/"
CXX="g++ -std=c++20 -O2 -pthread -I$HERE/inc -I$M/include -I$B/include -I$B -DLCX_BUILDING -DLCX_EMU_SM80=${SM80:-1} -DLCX_EMU_SM90A=${SM90A:-${SM80:-1}} -w"
$CXX -c "$HERE/emu_rt.cc" -o "$F/obj/emu_rt.o"
OBJS="$F/obj/emu_rt.o"
for cu in "$M"/kernels/cuda/*.cu; do
  n=$(basename "$cu" .cu)
  python3 "$HERE/prep.py" "$cu" "$F/tree/kernels/cuda/$n.cc" 2>>"$F/prep.log"
  $CXX -c "$F/tree/kernels/cuda/$n.cc" -o "$F/obj/$n.o"
  OBJS="$OBJS $F/obj/$n.o"
done
# the library without its nvcc-built CUDA objects
rm -rf "$F/lib" && mkdir -p "$F/lib" && (cd "$F/lib" && ar x "$B/lib/liblongctx.a" && rm -f cuda_*.o)
cc -I"$B/tests" -I"$M/tests" -I"$B" -I"$M" -I"$B/include" -I"$M/include" -I"$B/lib" -I"$M/lib" -I"$M/kernels" \
  -std=c11 -O2 -D_GNU_SOURCE -pthread -c "$M/tests/test_cuda.c" -o "$F/obj/test_cuda.o"
g++ -pthread -o "$F/test_cuda_emu" "$F/obj/test_cuda.o" $OBJS "$F"/lib/*.o "$B/tests/liblcx_test_util.a" \
  $(pkg-config --libs sleef hwloc cmocka 2>/dev/null || echo -lsleef -lhwloc -lcmocka) -lm
echo "built $F/test_cuda_emu"
# the golden files next to the tree, as the meson test setup passes them
export LONGCTX_GOLDEN_DIR="${LONGCTX_GOLDEN_DIR:-$M/../shared/golden}"
exec "$F/test_cuda_emu"
