#!/usr/bin/env bash
# Install the Debian packages longctx needs, if any is missing (run as root).
#   scripts/deps.sh            build + demo: compiler, meson, sleef, hwloc
#   scripts/deps.sh --test     + CMocka, cmake, libudev-dev (static link check),
#                                the aarch64 cross toolchain, qemu-user and the
#                                arm64 -dev packages (NEON tests under qemu),
#                                python3-numpy (Python binding tests), Open MPI
#                                (the ring attention example's tests)
set -euo pipefail
want=(gcc pkg-config meson ninja-build libsleef-dev libhwloc-dev libopenblas-dev)
cross=0
if [ "${1:-}" = "--test" ]; then
    want+=(libcmocka-dev cmake g++ libudev-dev gcc-aarch64-linux-gnu qemu-user python3-numpy
           libsleef-dev:arm64 libhwloc-dev:arm64 libcmocka-dev:arm64 libopenmpi-dev openmpi-bin)
    cross=1
fi
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
if [ "$cross" = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    need_update=1
fi
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif [ -n "${need_update:-}" ]; then
    $SUDO apt-get update -qq
fi
echo "deps: ok"
