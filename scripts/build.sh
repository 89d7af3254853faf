#!/usr/bin/env bash
# Configure (once) and build the patched QEMU from the work tree, through
# ccache, with only what the demo and the tests need:
#   qemu-system-x86_64, qemu-img, qemu-storage-daemon, contrib/vhost-user-blk,
#   the qtest binaries (qos-test, migration-test) and the qtest helpers.
# BUILD_TARGETS=... overrides the ninja targets.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# --base: build the unpatched base too (.cache/build-base), for the tests
# of migration to and from an unpatched QEMU 10.2.2.
if [ "${1:-}" = --base ]; then
    "$VLM_TOP/scripts/base.sh"
    WORK_TREE=$BASE_DIR
    BUILD_DIR=$VLM_CACHE/build-base
    BUILD_TARGETS=${BUILD_TARGETS:-"qemu-system-x86_64 storage-daemon/qemu-storage-daemon"}
elif [ "${1:-}" = --tree ]; then
    # --tree: build WORK_TREE, as it is, into BUILD_DIR (scripts/upstream.sh)
    [ -f "$WORK_TREE/configure" ] || die "no QEMU tree in $WORK_TREE"
elif [ "${1:-}" = --asan ]; then
    # --asan: the patched QEMU with AddressSanitizer (.cache/build-asan), for
    # the tests that feed it malformed input, and libvhost-user in
    # contrib/vhost-user-blk for the back-end state tests.
    [ -d "$WORK_TREE/.git" ] || "$VLM_TOP/scripts/worktree.sh"
    BUILD_DIR=$VLM_CACHE/build-asan
    BUILD_TARGETS=${BUILD_TARGETS:-"qemu-system-x86_64 contrib/vhost-user-blk/vhost-user-blk
        tests/unit/test-blk-withdraw"}
    VLM_EXTRA_CONFIG="--enable-asan ${VLM_EXTRA_CONFIG:-}"
else
    [ -d "$WORK_TREE/.git" ] || "$VLM_TOP/scripts/worktree.sh"
fi

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_BASEDIR=$VLM_TOP
export CCACHE_NOHASHDIR=1
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-6G}
# Work trees are recreated with fresh mtimes; hash contents, not times.
export CCACHE_SLOPPINESS=include_file_mtime,include_file_ctime,time_macros,pch_defines

CONFIG_OPTS=(
    --target-list=x86_64-softmmu
    --python=/usr/bin/python3
    --cc="ccache gcc" --host-cc="ccache gcc" --cxx="ccache g++"
    --without-default-features
    --enable-tools --enable-kvm --enable-tcg
    --enable-vhost-user --enable-vhost-kernel --enable-vhost-net
    --enable-vhost-vdpa --enable-vhost-user-blk-server
    --enable-linux-aio --enable-cap-ng --enable-attr --enable-pixman
    --enable-fdt=system --disable-docs --disable-rust
    --disable-install-blobs
    # Debian's seabios and ipxe-qemu provide the firmware at run time.
    --firmwarepath=/usr/share/seabios:/usr/lib/ipxe/qemu:/usr/share/qemu
)
# Configuration is part of the build's identity: reconfigure when it changes.
want="$(printf '%s\n' "${CONFIG_OPTS[@]}" ${VLM_EXTRA_CONFIG:-} | sha256sum)"
if [ ! -f "$BUILD_DIR/build.ninja" ] ||
   [ ! -f "$BUILD_DIR/pc-bios/optionrom/config.mak" ] || [ "$(cat "$BUILD_DIR/.vlm-config" 2>/dev/null)" != "$want" ]; then
    rm -rf "$BUILD_DIR"
    mkdir -p "$BUILD_DIR"
    (cd "$BUILD_DIR" && "$WORK_TREE/configure" "${CONFIG_OPTS[@]}" ${VLM_EXTRA_CONFIG:-}) \
        >"$BUILD_DIR.configure.log" 2>&1 ||
        { tail -30 "$BUILD_DIR.configure.log"; die "configure failed (see $BUILD_DIR.configure.log)"; }
    echo "$want" >"$BUILD_DIR/.vlm-config"
fi

TARGETS=${BUILD_TARGETS:-$VLM_BUILD_TARGETS}
jobs=${VLM_JOBS:-$(nproc)}
ninja -C "$BUILD_DIR" -j "$jobs" $TARGETS

# The x86 option ROMs (linuxboot_dma.bin for -kernel, kvmvapic.bin, pvh.bin)
# are not in Debian's +ds tarball: build them from source, as Debian does,
# and put them where the build tree's binaries look for data files.
[ -f "$BUILD_DIR/pc-bios/optionrom/config.mak" ] ||
    die "configure found no i386 compiler for the option ROMs (gcc-multilib)"
make -s -C "$BUILD_DIR/pc-bios/optionrom" >/dev/null
datadir=$BUILD_DIR/qemu-bundle/usr/local/share/qemu
mkdir -p "$datadir"
for rom in "$BUILD_DIR"/pc-bios/optionrom/*.bin; do
    ln -sf "$rom" "$datadir/"
done
# Binaries run from the build tree relocate --firmwarepath into qemu-bundle/,
# so link Debian's seabios and ipxe-qemu firmware there too: no -L needed.
for fw in /usr/share/seabios/* /usr/lib/ipxe/qemu/*; do
    [ -e "$datadir/$(basename "$fw")" ] || ln -sf "$fw" "$datadir/"
done
ccache -s 2>/dev/null | grep -E 'Hits|Misses' | tr -s ' ' | paste -sd' ' >&2 || true
