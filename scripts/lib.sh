# Common settings for the virtio-lm scripts.  Source it; do not run it.
# shellcheck shell=bash

VLM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QEMU_VERSION=10.2.2
DEB_VERSION=1:10.2.2+ds-1
DEB_DSC=qemu_10.2.2+ds-1.dsc

# Pristine base (unpacked), developer work tree, build tree.
VLM_CACHE=${VLM_CACHE:-$VLM_TOP/.cache}
BASE_DIR=$VLM_CACHE/qemu-base
WORK_TREE=${WORK_TREE:-$VLM_TOP/qemu}
BUILD_DIR=${BUILD_DIR:-$VLM_TOP/build}
PATCH_DIR=${PATCH_DIR:-$VLM_TOP/patches}

# Identity used for the commits of the work tree (base commit and am).
export GIT_AUTHOR_NAME=${GIT_AUTHOR_NAME:-virtio-lm developers}
export GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL:-virtio-lm@lists.invalid}
export GIT_COMMITTER_NAME=${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}
export GIT_COMMITTER_EMAIL=${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
note() { echo "$(basename "$0"): $*" >&2; }

# Patches listed in patches/series, in order (comments and blanks skipped).
series_patches() {
    [ -f "$PATCH_DIR/series" ] || return 0
    grep -v '^[[:space:]]*\(#\|$\)' "$PATCH_DIR/series"
}

# What `make build` builds (scripts/build.sh; scripts/each-commit.sh asks
# for those of them that exist at each commit).
VLM_BUILD_TARGETS="qemu-system-x86_64 qemu-img
    contrib/vhost-user-blk/vhost-user-blk
    tests/qtest/qos-test tests/qtest/migration-test tests/unit/test-vmstate
    tests/unit/test-vhost-inflight tests/unit/test-blk-withdraw
    tests/unit/test-coroutine
    tests/qtest/virtio-blk-inflight-test
    tests/qtest/virtio-suspend-test
    storage-daemon/qemu-storage-daemon"
