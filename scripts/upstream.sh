#!/usr/bin/env bash
# Build the upstream QEMU peer for the interoperability tests: the master
# snapshot in ../shared/qemu-upstream/ (the 11.0 line, with upstream's
# vhost-user-blk in-flight migration), checked against its SHA256SUMS,
# unpacked into .cache/qemu-upstream and built into .cache/build-upstream
# through ccache with the options of the series' build.  Only
# qemu-system-x86_64 is built: the tests run the series' back-ends on
# both sides.  Idempotent; without the snapshot it says so and fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

shared=${VLM_UPSTREAM_SRC:-$VLM_TOP/../shared/qemu-upstream}
src=$VLM_CACHE/qemu-upstream
tarball=$(cd "$shared" 2>/dev/null && ls qemu-upstream-*.tar.xz 2>/dev/null | head -n1) ||
    true
[ -n "$tarball" ] && [ -f "$shared/SHA256SUMS" ] ||
    die "no upstream snapshot in $shared (qemu-upstream-*.tar.xz and SHA256SUMS)"

stamp=$src/.vlm-upstream
want=$(cd "$shared" && sha256sum "$tarball")
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    (cd "$shared" && sha256sum --quiet -c SHA256SUMS) ||
        die "checksum mismatch in $shared"
    "$VLM_TOP/scripts/base.sh"
    rm -rf "$src" "$src.tmp"
    mkdir -p "$src.tmp"
    tar -xJf "$shared/$tarball" -C "$src.tmp" --strip-components=1
    # The archive has no git submodules; the base's copies of these work.
    for sp in keycodemapdb berkeley-softfloat-3 berkeley-testfloat-3; do
        rm -rf "$src.tmp/subprojects/$sp"
        cp -a "$BASE_DIR/subprojects/$sp" "$src.tmp/subprojects/$sp"
    done
    echo "$want" >"$src.tmp/.vlm-upstream"
    mv "$src.tmp" "$src"
fi

WORK_TREE=$src BUILD_DIR=$VLM_CACHE/build-upstream \
BUILD_TARGETS=${BUILD_TARGETS:-qemu-system-x86_64} \
    "$VLM_TOP/scripts/build.sh" --tree
