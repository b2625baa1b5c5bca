#!/usr/bin/env bash
# Build and run examples/outoftree/consumer.c against an installed longctx,
# once through pkg-config (shared and static) and once through CMake.
#   scripts/check-outoftree.sh PREFIX
set -euo pipefail
prefix=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../examples/outoftree" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
libdir=$(dirname "$(find "$prefix" -name 'longctx.pc' -path '*pkgconfig*' | head -n1)")/..
libdir=$(cd "$libdir" && pwd)
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "out-of-tree: pkg-config (shared)"
cc -std=c11 -Wall -Werror -o "$work/consumer-pc" "$src/consumer.c" $(pkg-config --cflags --libs longctx)
"$work/consumer-pc"

echo "out-of-tree: pkg-config (static)"
libs_static=$(pkg-config --static --libs longctx | sed 's/-llongctx//')
cc -std=c11 -Wall -Werror -o "$work/consumer-static" "$src/consumer.c" $(pkg-config --cflags longctx) \
   "$libdir/liblongctx.a" $libs_static
if ldd "$work/consumer-static" | grep -q liblongctx; then
    echo "static consumer still links liblongctx.so" >&2
    exit 1
fi
"$work/consumer-static"

echo "out-of-tree: CMake find_package(longctx)"
cmake -S "$src" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/consumer"
echo "out-of-tree: OK"
