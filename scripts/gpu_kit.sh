#!/usr/bin/env bash
# Run the CUDA test suite, the compute-sanitizer checks and the CUDA benchmarks
# on an offline GPU machine that lacks the SLEEF, hwloc and CMocka -dev
# packages (and possibly pkg-config), from a small kit of unpacked .debs.
#
#   scripts/gpu_kit.sh pack DIR
#       On a networked x86-64 Debian/Ubuntu machine: `apt-get download` the
#       runtime and -dev packages of sleef, hwloc and cmocka plus pkgconf, and
#       `dpkg -x` them into DIR/root (nothing is installed). libudev1, which
#       libhwloc needs at run time and most images already have, goes to
#       DIR/fallback and is used only where the target lacks it.
#       Writes DIR/packages.txt (what is inside) and DIR/symlinks.txt (the
#       kit's symbolic links, re-created by `run` if a copy dropped any).
#   scripts/gpu_kit.sh check DIR [BUILD_DIR]
#       On the packing machine: shows that pkg-config, the compiler, meson and
#       the dynamic loader take sleef, hwloc and cmocka from the kit only
#       (the system's .pc files are hidden), then builds a CPU-only tree
#       (-Dcuda=disabled; BUILD_DIR, default a temporary one) and runs the
#       "core" suite against the kit's libraries.
#   scripts/gpu_kit.sh run DIR OUT [STEP...]
#       On the GPU machine, from a copy of the source tree (no network, no
#       root needed). STEPs, in this order (default: all of them):
#         build      meson setup (CUDA on, -Dgpu_sm from nvidia-smi) + ninja
#         test       meson test --suite cuda
#         memcheck   compute-sanitizer --tool memcheck --leak-check full on tests/test_cuda
#         racecheck  compute-sanitizer --tool racecheck  on tests/test_cuda
#         synccheck  compute-sanitizer --tool synccheck  on tests/test_cuda
#         initcheck  compute-sanitizer --tool initcheck  on tests/test_cuda
#         bench      longctx-bench --device cuda (output in OUT/bench.txt)
#       Every step runs even when an earlier one failed (steps that need the
#       build are marked "not run" when it failed); each step's output is in
#       OUT/<step>.log. OUT/summary.txt gets one line per step (status,
#       seconds) and is printed last. Steps recorded in OUT by earlier calls
#       stay in the summary, so the steps can be split over several calls with
#       the same OUT. Exit status 0 when every step passed or was skipped.
#
# Environment (all optional):
#   GPU_KIT_ARCH       Debian architecture to pack (default amd64)
#   GPU_KIT_BUILD      build directory for `run`, relative to the source root (default build-gpu)
#   GPU_KIT_SM         SM architecture(s) for -Dgpu_sm instead of nvidia-smi's (e.g. 90)
#   GPU_KIT_SUITES     meson test suites of the `test` step (default "cuda")
#   GPU_KIT_BENCH_ARGS extra longctx-bench arguments, e.g. "--quick" or "attention rope"
#   GPU_KIT_SANITIZER_ARGS  extra compute-sanitizer arguments for every tool (failed CUDA
#                      API calls, some provoked by the tests, count as errors unless
#                      "--report-api-errors no")
#   GPU_KIT_TIMEOUT_<STEP>  seconds per step (0: none): BUILD 1800, TEST 900, MEMCHECK 900,
#                      RACECHECK 600, SYNCCHECK 600, INITCHECK 600, BENCH 900
#   GPU_KIT_FALLBACK   auto (default): DIR/fallback libraries only where the system lacks
#                      them; always; never
#   GPU_KIT_KEEP=1     `check` keeps its temporary build directory
#   LONGCTX_GOLDEN_DIR golden data for the tests; default: ../shared/golden or
#                      shared/golden beside the source tree, whichever exists
set -u

self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
src_root=$(cd "$(dirname "$self")/.." && pwd)

# The packages of the kit. Runtime libraries and pkgconf need only libc (and,
# for libhwloc, libudev: see FALLBACK_PKGS); `pack` checks this again.
KIT_PKGS=(libsleef3 libsleef-dev libhwloc15 libhwloc-dev libcmocka0 libcmocka-dev
          pkgconf pkgconf-bin libpkgconf3)
# Needed at run time, present on most images: used there only when missing.
FALLBACK_PKGS=(libudev1)
# Libraries every glibc system with a C/C++ toolchain has.
BASE_SONAMES=" libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 ld-linux-x86-64.so.2 "
BASE_SONAMES+=" ld-linux-aarch64.so.1 libgcc_s.so.1 libstdc++.so.6 "
STEPS=(build test memcheck racecheck synccheck initcheck bench)

die() { echo "gpu_kit: $*" >&2; exit 2; }
note() { echo "gpu_kit: $*"; }
abspath() { mkdir -p "$1" && (cd "$1" && pwd); }
usage() {
    sed -n '2,/^set -u/p' "$self" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'
    exit 2
}

# ---------------------------------------------------------------- pack ----
cmd_pack() {
    [ $# -eq 1 ] || usage
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
        die "pack needs apt-get and dpkg (Debian or Ubuntu)"
    fi
    local kit arch tmp deb pkg ver dest
    kit=$(abspath "$1") || die "cannot create $1"
    arch=${GPU_KIT_ARCH:-amd64}
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpu_kit.XXXXXX") || die "mktemp failed"
    PACK_TMP=$tmp
    trap 'rm -rf "$PACK_TMP"' EXIT
    # apt drops privileges to _apt for downloads when it can write there
    [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1 && chown _apt "$tmp"

    local want=()
    for pkg in "${KIT_PKGS[@]}" "${FALLBACK_PKGS[@]}"; do want+=("$pkg:$arch"); done
    if ! (cd "$tmp" && apt-get download -q "${want[@]}" >"$tmp/download.log" 2>&1); then
        if [ "$(id -u)" = 0 ]; then
            note "apt-get download failed; refreshing the package lists (apt-get update)"
            apt-get update -qq >/dev/null 2>&1
            (cd "$tmp" && apt-get download -q "${want[@]}" >"$tmp/download.log" 2>&1) ||
                { cat "$tmp/download.log"; die "apt-get download failed"; }
        else
            cat "$tmp/download.log"
            die "apt-get download failed (stale package lists? run apt-get update as root)"
        fi
    fi

    rm -rf "$kit/root" "$kit/fallback" "$kit/packages.txt" "$kit/symlinks.txt"
    : >"$kit/packages.txt"
    local names=()
    for deb in "$tmp"/*.deb; do
        pkg=$(dpkg-deb -f "$deb" Package)
        ver=$(dpkg-deb -f "$deb" Version)
        dest=root
        case " ${FALLBACK_PKGS[*]} " in *" $pkg "*) dest=fallback ;; esac
        dpkg -x "$deb" "$kit/$dest" || die "dpkg -x $deb failed"
        printf '%s %s %s -> %s\n' "$pkg" "$ver" "$arch" "$dest" >>"$kit/packages.txt"
        names+=("$pkg=$ver")
    done
    # documentation is not needed
    for dest in root fallback; do
        rm -rf "$kit/$dest/usr/share/doc" "$kit/$dest/usr/share/man" "$kit/$dest/usr/share/lintian"
    done
    # Headers in the multiarch directory (sleef.h, hwloc/autogen/config.h) are
    # found by the system compiler only under /usr/include/<triplet>; the .pc
    # files name <root>/usr/include only, so move them there.
    local d
    for d in "$kit/root/usr/include"/*-linux-gnu*; do
        [ -d "$d" ] || continue
        cp -a "$d/." "$kit/root/usr/include/" && rm -rf "$d"
    done
    (cd "$kit" && find root fallback -type l -printf '%p\t%l\n' | sort) >"$kit/symlinks.txt"

    pack_verify "$kit"
    local kib
    kib=$(du -sk "$kit" | cut -f1)
    note "packed ${#names[@]} packages (${names[*]}) into $kit: $(awk -v k="$kib" 'BEGIN{printf "%.1f", k/1024}') MiB"
    [ "$kib" -le $((64 * 1024)) ] || note "warning: the kit exceeds 64 MiB"
}

# Every library named by the kit's .pc files and ELF files must be in the kit
# or be a base system library; reports what is not, and the glibc it needs.
pack_verify() {
    local kit=$1 f m lib missing="" glibc
    for f in "$kit"/root/usr/lib/*/pkgconfig/*.pc "$kit"/root/usr/lib/pkgconfig/*.pc \
             "$kit"/root/usr/share/pkgconfig/*.pc; do
        [ -f "$f" ] || continue
        for m in $(sed -n 's/^Requires\(\.private\)\{0,1\}:\(.*\)/\2/p' "$f" | tr ',' ' ' |
                   sed 's/[<>=!]\{1,\} *[^ ]*//g'); do
            find "$kit/root" -name "$m.pc" | grep -q . || missing+=" $m.pc(required by $(basename "$f"))"
        done
    done
    if command -v objdump >/dev/null; then
        local provided=" "
        provided+=$(find "$kit/root" "$kit/fallback" -name 'lib*.so*' -printf '%f ')
        glibc=""
        while IFS= read -r f; do
            objdump -p "$f" >/dev/null 2>&1 || continue # not ELF
            for lib in $(objdump -p "$f" | awk '$1 == "NEEDED" {print $2}'); do
                case "$provided$BASE_SONAMES" in *" $lib "*) ;; *) missing+=" $lib(needed by ${f##*/})" ;; esac
            done
            glibc+=" $(objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
        done < <(find "$kit/root" "$kit/fallback" -type f \( -name 'lib*.so*' -o -path '*/bin/*' \))
        glibc=$(tr ' ' '\n' <<<"$glibc" | sort -uV | tail -1)
        [ -n "$glibc" ] && echo "needs ${glibc/_/ >= } on the target" >>"$kit/packages.txt" &&
            note "the kit's binaries need ${glibc/_/ >= }"
    else
        note "objdump not found: shared-library dependencies not checked"
    fi
    if [ -n "$missing" ]; then
        note "warning: needed from the target system, not in the kit:$missing"
    else
        note "every .pc Requires and NEEDED library is in the kit or is libc/libm/libgcc/libstdc++"
    fi
}

# ------------------------------------------------- the kit's environment ----
# Sets PATH, PKG_CONFIG*, LD_LIBRARY_PATH for kit DIR; re-creates symbolic
# links the copy of the kit lost.
kit_env() {
    local kit=$1 path target d
    KIT_ROOT=$kit/root
    [ -d "$KIT_ROOT" ] || die "no kit in $kit (make one with: $0 pack DIR)"
    if [ -f "$kit/symlinks.txt" ]; then
        while IFS=$'\t' read -r path target; do
            [ -n "$path" ] || continue
            [ -e "$kit/$path" ] || [ -L "$kit/$path" ] || ln -s "$target" "$kit/$path" 2>/dev/null ||
                note "warning: cannot re-create $kit/$path"
        done <"$kit/symlinks.txt"
    fi
    local libdirs="" pcdirs="" fbdirs=""
    for d in $(find "$KIT_ROOT" \( -type f -o -type l \) -name 'lib*.so*' -printf '%h\n' | sort -u); do
        libdirs+=${libdirs:+:}$d
    done
    for d in $(find "$KIT_ROOT" -name '*.pc' -printf '%h\n' | sort -u); do
        pcdirs+=${pcdirs:+:}$d
    done
    [ -n "$pcdirs" ] || die "no .pc files in $KIT_ROOT"

    # fallback libraries: only those the dynamic loader cannot find elsewhere
    local mode=${GPU_KIT_FALLBACK:-auto} ldc cache="" so
    if [ -d "$kit/fallback" ] && [ "$mode" != never ]; then
        ldc=$(command -v ldconfig || echo /sbin/ldconfig)
        [ "$mode" = auto ] && cache=$("$ldc" -p 2>/dev/null)
        while IFS= read -r so; do # sonames (lib*.so.N)
            if [ "$mode" = always ] || ! grep -q "^[[:space:]]${so##*/} " <<<"$cache"; then
                case ":$fbdirs:" in *":${so%/*}:"*) ;; *) fbdirs+=${fbdirs:+:}${so%/*} ;; esac
            fi
        done < <(find "$kit/fallback" -name 'lib*.so.[0-9]*' ! -name '*.so.*.*')
    fi
    export KIT_FALLBACK_USED=${fbdirs:-none}
    export LD_LIBRARY_PATH=$libdirs${fbdirs:+:$fbdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    # Only the kit's .pc files are visible; -I/-L paths are prefixed with the
    # kit's root (its .pc files say /usr).
    export PKG_CONFIG_LIBDIR=$pcdirs PKG_CONFIG_PATH=$pcdirs PKG_CONFIG_SYSROOT_DIR=$KIT_ROOT
    # The kit's headers are system headers, as when the -dev packages are
    # installed (no warnings from them): pkg-config leaves out their -I, and
    # the builds get -isystem instead (KIT_CFLAGS, given to meson as c_args).
    export PKG_CONFIG_SYSTEM_INCLUDE_PATH=$KIT_ROOT/usr/include KIT_CFLAGS=-isystem$KIT_ROOT/usr/include
    local pc=$KIT_ROOT/usr/bin/pkgconf
    [ -f "$pc" ] && [ ! -x "$pc" ] && chmod +x "$pc" 2>/dev/null
    if "$pc" --version >/dev/null 2>&1; then
        export PKG_CONFIG=$pc PATH=$KIT_ROOT/usr/bin:$PATH
    elif command -v pkg-config >/dev/null; then
        note "warning: the kit's pkgconf does not run here; using $(command -v pkg-config)"
        export PKG_CONFIG
        PKG_CONFIG=$(command -v pkg-config)
    else
        die "neither the kit's pkgconf nor a pkg-config runs here"
    fi
}

print_env() {
    echo "PKG_CONFIG=$PKG_CONFIG"
    echo "PKG_CONFIG_LIBDIR=$PKG_CONFIG_LIBDIR"
    echo "PKG_CONFIG_SYSROOT_DIR=$PKG_CONFIG_SYSROOT_DIR"
    echo "PKG_CONFIG_SYSTEM_INCLUDE_PATH=$PKG_CONFIG_SYSTEM_INCLUDE_PATH (c_args: $KIT_CFLAGS)"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    echo "kit fallback libraries in use: $KIT_FALLBACK_USED"
}

# --------------------------------------------------------------- check ----
cmd_check() {
    { [ $# -ge 1 ] && [ $# -le 2 ]; } || usage
    local kit build tmp="" fail=0 m a f
    kit=$(cd "$1" 2>/dev/null && pwd) || die "no kit at $1"
    # exercise the kit's fallback libraries too, even where the system has them
    GPU_KIT_FALLBACK=${GPU_KIT_FALLBACK:-always} kit_env "$kit"
    print_env
    under_kit() { case "$1" in "$kit"/*) return 0 ;; *) return 1 ;; esac; }

    echo "--- pkg-config (only the kit's .pc files are visible)"
    for m in sleef hwloc cmocka; do
        if ! a=$("$PKG_CONFIG" --modversion "$m" 2>&1); then
            echo "$m: NOT FOUND: $a"; fail=1; continue
        fi
        echo "$m $a: $("$PKG_CONFIG" --cflags --libs "$m")"
        for f in $("$PKG_CONFIG" --cflags --libs "$m"); do
            case "$f" in -I* | -L*) under_kit "${f:2}" || { echo "  $f is outside the kit"; fail=1; } ;; esac
        done
    done
    a=$("$PKG_CONFIG" --list-all 2>/dev/null | awk '{print $1}' | sort -u | tr '\n' ' ')
    echo "visible modules: $a"
    [ "$a" = "cmocka hwloc sleef " ] || { echo "  expected only cmocka, hwloc and sleef"; fail=1; }

    echo "--- headers the project includes, as the compiler resolves them"
    local cc=${CC:-cc} deps cflags
    read -r -a cflags <<<"$KIT_CFLAGS $("$PKG_CONFIG" --cflags sleef hwloc cmocka)"
    deps=$(printf '#include <%s>\n' stdarg.h stddef.h stdint.h setjmp.h sleef.h hwloc.h cmocka.h |
           "$cc" -M -x c - "${cflags[@]}" 2>&1) || { echo "$deps"; fail=1; }
    for h in sleef.h hwloc.h hwloc/autogen/config.h cmocka.h; do
        f=$(tr -s $' \\\\' '\n' <<<"$deps" | grep -m1 "/$h\$")
        if [ -n "$f" ] && under_kit "$f"; then echo "$h: $f"; else echo "$h: ${f:-not found} (not from the kit)"; fail=1; fi
    done

    if [ $# -eq 2 ]; then
        build=$(abspath "$(dirname "$2")")/$(basename "$2") || die "cannot create $2"
        [ ! -e "$build" ] || [ -d "$build/meson-private" ] || die "$build exists and is not a meson build directory"
    else
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpu_kit_check.XXXXXX") || die "mktemp failed"
        build=$tmp/build
    fi
    echo "--- meson setup $build (-Dcuda=disabled)"
    rm -rf "$build"
    if ! (cd "$src_root" && meson setup "$build" -Dcuda=disabled -Dtests=true -Dbench=false \
              -Dexamples=false -Dbuildtype=release "-Dc_args=$KIT_CFLAGS" >"$build.setup.log" 2>&1); then
        tail -30 "$build.setup.log"; echo "check: FAILED (meson setup)"
        [ -n "$tmp" ] && rm -rf "$tmp"
        return 1
    fi
    grep -E "^Found pkg-config|^Run-time dependency (sleef|hwloc|cmocka)" "$build.setup.log"
    meson introspect "$build" --dependencies | python3 -c '
import json, sys
kit = sys.argv[1]
bad = 0
for d in json.load(sys.stdin):
    if d["name"] not in ("sleef", "hwloc", "cmocka"):
        continue
    # compile_args: empty (the kit include directory is a system one: -isystem in c_args)
    paths = [a[2:] if a[:2] in ("-I", "-L") else a for a in d["compile_args"] + d["link_args"]]
    paths = [p for p in paths if p.startswith("/")]
    print("meson: %s %s: %s" % (d["name"], d["version"], " ".join(d["compile_args"] + d["link_args"])))
    if not any(p.endswith(".so") for p in paths) or any(not p.startswith(kit + "/") for p in paths):
        print("  not (only) from the kit"); bad = 1
sys.exit(bad)' "$kit" || fail=1

    echo "--- build tests/test_core and run the core suite"
    if ninja -C "$build" tests/test_core >"$build.build.log" 2>&1; then
        a=$(grep -c "warning:.*$kit/" "$build.build.log")
        echo "compiler warnings from the kit's headers: $a"
        [ "$a" = 0 ] || fail=1
        ldd "$build/tests/test_core" | grep -E "sleef|hwloc|cmocka|udev"
        for m in libsleef libhwloc libcmocka $([ "$KIT_FALLBACK_USED" != none ] && echo libudev); do
            ldd "$build/tests/test_core" | grep "$m" | grep -q " => $kit/" ||
                { echo "$m is not loaded from the kit"; fail=1; }
        done
        meson test -C "$build" --no-rebuild --suite core --print-errorlogs || fail=1
    else
        tail -30 "$build.build.log"; fail=1
    fi
    echo "kit size: $(du -sh "$kit" | cut -f1)"
    [ -n "$tmp" ] && [ "${GPU_KIT_KEEP:-0}" = 0 ] && rm -rf "$tmp"
    if [ "$fail" = 0 ]; then echo "check: OK (sleef, hwloc, cmocka and pkgconf all come from $kit)"; else echo "check: FAILED"; fi
    return "$fail"
}

# ----------------------------------------------------------------- run ----
# A CUDA tool: on PATH, else in $CUDA_HOME, $CUDA_PATH or /usr/local/cuda.
cuda_tool() {
    local d
    command -v "$1" 2>/dev/null && return 0
    for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
        [ -n "$d" ] || continue
        for f in "$d/bin/$1" "$d/$1/$1"; do [ -x "$f" ] && { echo "$f"; return 0; }; done
    done
    return 1
}

# record STEP STATUS SECONDS: one summary line, kept in OUT/.steps/
record() {
    mkdir -p "$OUT/.steps"
    printf '%-10s %-58s %6ss\n' "$1" "$2" "$3" >"$OUT/.steps/$1"
    case "$2" in ok* | skipped*) ;; *) RUN_FAIL=1 ;; esac
}

# Runs STEP with a timeout, output teed into LOG; sets STEP_RC and STEP_S.
timed() {
    local t=$2 log=$3 t0; shift 3
    t0=$(date +%s)
    { echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC') (timeout ${t}s): $*"; } >"$log"
    timeout -k 30 "$t" "$@" 2>&1 | tee -a "$log"
    STEP_RC=${PIPESTATUS[0]}
    STEP_S=$(($(date +%s) - t0))
    echo "# exit status $STEP_RC after ${STEP_S}s" >>"$log"
}

rc_status() { # rc: generic status word
    case "$1" in
        0) echo ok ;; 77) echo "skipped (exit 77: no usable GPU?)" ;;
        124 | 137) echo "timeout" ;; *) echo "failed (exit $1)" ;;
    esac
}

# internal: the build step (run under timeout by `run`)
cmd__build() {
    local build=$1 sm=$2 opts
    opts=(-Dcuda=enabled -Dtests=true -Dbench=true -Dexamples=false -Dbuildtype=release
          "-Dc_args=$KIT_CFLAGS")
    [ -n "$sm" ] && opts+=("-Dgpu_sm=$sm")
    [ -n "${LONGCTX_GOLDEN_DIR:-}" ] && opts+=("-Dgolden_dir=$LONGCTX_GOLDEN_DIR")
    cd "$src_root" || exit 1
    local stamp
    stamp="meson $("${MESON[@]}" --version) ${opts[*]} kit $PKG_CONFIG_SYSROOT_DIR"
    echo "meson $("${MESON[@]}" --version), ninja $(ninja --version), $(command -v nvcc): $(nvcc --version | tail -1)"
    print_env
    # A build directory configured by this script with the same meson, options
    # and kit is reused as it is (ninja re-runs meson when meson.build files
    # change). Any other one is configured afresh: meson keeps dependencies it
    # found before, which would point into another copy of the kit.
    if [ -f "$build/build.ninja" ] && [ "$(cat "$build/gpu_kit.stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "reusing $build (configured by gpu_kit.sh with the same options)"
    else
        if [ -e "$build" ]; then
            [ -d "$build/meson-private" ] || [ -z "$(ls -A "$build")" ] ||
                { echo "$build exists and is not a meson build directory"; exit 1; }
            echo "configuring $build afresh"
            rm -rf "$build"
        fi
        "${MESON[@]}" setup "$build" "${opts[@]}" || exit 1
        echo "$stamp" >"$build/gpu_kit.stamp"
    fi
    grep -q "LCX_HAVE_CUDA 1" "$build/lcx_config.h" || { echo "the CUDA backend is not configured"; exit 1; }
    ninja -C "$build"
}

cmd_run() {
    [ $# -ge 2 ] || usage
    local kit steps=() s want more=()
    kit=$(cd "$1" 2>/dev/null && pwd) || die "no kit at $1"
    OUT=$(abspath "$2") || die "cannot create $2"
    shift 2
    for s in "$@"; do
        case " ${STEPS[*]} " in *" $s "*) ;; *) die "unknown step '$s' (steps: ${STEPS[*]})" ;; esac
    done
    for s in "${STEPS[@]}"; do # keep the canonical order
        if [ $# -eq 0 ]; then steps+=("$s"); else
            for want in "$@"; do [ "$want" = "$s" ] && steps+=("$s"); done
        fi
    done
    cd "$src_root" || die "cannot enter $src_root"
    kit_env "$kit"
    RUN_FAIL=0
    local build=${GPU_KIT_BUILD:-build-gpu}
    case "$build" in /*) ;; *) build=$src_root/$build ;; esac

    # tools: meson and ninja may come from pip without scripts on PATH
    MESON=(meson)
    if ! command -v meson >/dev/null; then
        if python3 -c 'import mesonbuild' 2>/dev/null; then MESON=(python3 -m mesonbuild.mesonmain); else MESON=(); fi
    fi
    if ! command -v ninja >/dev/null && python3 -c 'import ninja' 2>/dev/null; then
        PATH=$(python3 -c 'import ninja; print(ninja.BIN_DIR)'):$PATH
    fi
    local nvcc sanitizer
    nvcc=$(cuda_tool nvcc) && PATH=$(dirname "$nvcc"):$PATH
    sanitizer=$(cuda_tool compute-sanitizer)
    export PATH

    # golden data, where the tests' default path does not reach it
    if [ -z "${LONGCTX_GOLDEN_DIR:-}" ]; then
        for s in "$src_root/../shared/golden" "$src_root/shared/golden"; do
            [ -f "$s/s2attn.json" ] && { export LONGCTX_GOLDEN_DIR; LONGCTX_GOLDEN_DIR=$(cd "$s" && pwd); break; }
        done
    fi

    # the GPU and its compute capability (9.0 -> 90)
    local gpu="none detected (no nvidia-smi)" sm=${GPU_KIT_SM:-} cap=""
    if command -v nvidia-smi >/dev/null; then
        cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' \r')
        gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), compute capability ${cap:-unknown}, driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
        [ -z "$sm" ] && [[ "$cap" =~ ^[0-9]+\.[0-9]+$ ]] && sm=${cap/./}
        # a 9.0 GPU: the sm_90a build (wgmma), with a portable PTX beside it
        [ "$sm" = 90 ] && [ -z "${GPU_KIT_SM:-}" ] && sm=80,90a
    fi
    {
        echo "gpu:    $gpu"
        echo "gpu_sm: ${sm:-meson default}"
        echo "golden: ${LONGCTX_GOLDEN_DIR:-not found (the golden test skips)}"
        echo "kit:    $kit (fallback libraries: $KIT_FALLBACK_USED)"
    } >"$OUT/summary.head"

    local built=0 have_build=0
    [ -f "$build/build.ninja" ] && [ -x "$build/tests/test_cuda" ] && have_build=1
    local no_build="not run (no build: run the build step)"
    for s in "${steps[@]}"; do
        local T st detail
        T=$(eval echo "\${GPU_KIT_TIMEOUT_${s^^}:-}")
        case "$s" in
        build)
            if [ ${#MESON[@]} -eq 0 ] || ! command -v ninja >/dev/null; then
                record build "missing (meson or ninja)" 0; have_build=0; no_build="not run (meson or ninja missing)"; continue
            fi
            [ -n "$nvcc" ] || { record build "missing (nvcc)" 0; have_build=0; no_build="not run (nvcc missing)"; continue; }
            export MESON_CMD="${MESON[*]}"
            timed build "${T:-1800}" "$OUT/build.log" bash "$self" _build "$build" "$sm"
            st=$(rc_status "$STEP_RC")
            record build "$st${sm:+ (sm $sm)}" "$STEP_S"
            if [ "$STEP_RC" = 0 ]; then built=1; have_build=1; else have_build=0; no_build="not run (build failed)"; fi
            ;;
        test)
            [ "$have_build" = 1 ] || { record test "$no_build" 0; continue; }
            [ ${#MESON[@]} -gt 0 ] || { record test "missing (meson)" 0; continue; }
            local targs=(--print-errorlogs)
            for want in ${GPU_KIT_SUITES:-cuda}; do targs+=(--suite "$want"); done
            [ "$built" = 1 ] && targs+=(--no-rebuild)
            timed test "${T:-900}" "$OUT/test.log" "${MESON[@]}" test -C "$build" "${targs[@]}"
            cp "$build/meson-logs/testlog.txt" "$OUT/testlog.txt" 2>/dev/null
            detail=$(grep -E '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' "$OUT/test.log" |
                     awk -F': *' '$2 + 0 != 0 {printf "%s%s: %d", sep, $1, $2; sep = ", "}')
            st=$(rc_status "$STEP_RC")
            if [ "$STEP_RC" = 0 ] && ! grep -qE '^Ok: +[1-9]' "$OUT/test.log" && grep -qE '^Skipped: +[1-9]' "$OUT/test.log"; then
                st="skipped"
            fi
            record test "$st${detail:+ ($detail)}" "$STEP_S"
            ;;
        memcheck | racecheck | synccheck | initcheck)
            [ "$have_build" = 1 ] || { record "$s" "$no_build" 0; continue; }
            [ -n "$sanitizer" ] || { record "$s" "missing (compute-sanitizer not found)" 0; continue; }
            local extra=()
            [ "$s" = memcheck ] && extra=(--leak-check full)
            read -r -a more <<<"${GPU_KIT_SANITIZER_ARGS:-}"
            extra+=(--error-exitcode 99 "${more[@]}")
            [ "$s" = memcheck ] && T=${T:-900}
            # the environment and directory `meson test` gives the test
            # (tests/meson.build: LONGCTX_ISA=; meson sets MALLOC_PERTURB_)
            (
                cd "$build" || exit 1
                export LONGCTX_ISA='' MALLOC_PERTURB_=${MALLOC_PERTURB_:-$((RANDOM % 255 + 1))}
                timed "$s" "${T:-600}" "$OUT/$s.log" "$sanitizer" --tool "$s" "${extra[@]}" ./tests/test_cuda
                echo "$STEP_RC $STEP_S" >"$OUT/.steps/$s.rc"
            )
            read -r STEP_RC STEP_S <"$OUT/.steps/$s.rc" 2>/dev/null || { STEP_RC=1; STEP_S=0; }
            rm -f "$OUT/.steps/$s.rc"
            case "$STEP_RC" in 99) st="errors found" ;; *) st=$(rc_status "$STEP_RC") ;; esac
            detail=$(grep -E "(ERROR|RACECHECK) SUMMARY:" "$OUT/$s.log" | tail -1 | sed 's/^=* *//')
            # failed CUDA calls are reported too, among them those the tests
            # provoke on purpose (e.g. an impossible allocation): count them apart
            want=$(grep -c "Program hit .* on CUDA API call" "$OUT/$s.log")
            [ "$want" != 0 ] && detail+="; $want failed CUDA API calls among them"
            record "$s" "$st${detail:+ ($detail)}" "$STEP_S"
            ;;
        bench)
            [ -x "$build/bench/longctx-bench" ] || { record bench "$no_build" 0; continue; }
            read -r -a more <<<"${GPU_KIT_BENCH_ARGS:-}"
            timed bench "${T:-900}" "$OUT/bench.txt" "$build/bench/longctx-bench" --device cuda "${more[@]}"
            st=$(rc_status "$STEP_RC")
            [ "$STEP_RC" = 1 ] && grep -qi "device" "$OUT/bench.txt" && st="failed (exit 1: no CUDA device?)"
            record bench "$st" "$STEP_S"
            ;;
        esac
    done

    {
        cat "$OUT/summary.head"
        for s in "${STEPS[@]}"; do [ -f "$OUT/.steps/$s" ] && cat "$OUT/.steps/$s"; done
    } >"$OUT/summary.txt"
    rm -f "$OUT/summary.head"
    echo
    echo "=== summary ($OUT/summary.txt; logs: $OUT/<step>.log, bench: $OUT/bench.txt)"
    cat "$OUT/summary.txt"
    return "$RUN_FAIL"
}

# ------------------------------------------------------------------ main ----
[ $# -ge 1 ] || usage
verb=$1; shift
case "$verb" in
    pack) cmd_pack "$@" ;;
    check) cmd_check "$@" ;;
    run) cmd_run "$@" ;;
    _build) # internal: the build step, called by `run` with the kit's environment
        read -r -a MESON <<<"${MESON_CMD:-meson}"
        KIT_FALLBACK_USED=${KIT_FALLBACK_USED:-}
        cmd__build "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
