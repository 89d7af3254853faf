#!/usr/bin/env bash
# Build every commit of the series in turn and run its tests, as
#   git rebase -x '<build and test>' vlm-base
# would: each patch must build and pass its tests alone.  At each commit:
#   - scripts/build.sh, for the targets of a full `make build` that exist at
#     that commit (a test binary added later is not asked for earlier);
#   - the unit tests of the series that exist then (they take seconds);
#   - the qtest binaries whose source the commit adds or changes, and, when
#     it changes a libqos helper, every series qtest that exists then.
# It uses the work tree and build tree of `make build`, and leaves the work
# tree on the branch it was on.  Not part of `make check` (about 45 min on
# 2 cores); run it after a change to the series: `make each-commit`.
#   FROM=<commit>  start after this commit (default: vlm-base)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -d "$WORK_TREE/.git" ] || die "no work tree; run make build"
cd "$WORK_TREE"
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
    die "the work tree has uncommitted changes"
branch=$(git symbolic-ref -q --short HEAD) || die "the work tree is not on a branch"
from=${FROM:-vlm-base}
trap 'git checkout -q "$branch"' EXIT

UNIT_TESTS=(test-vmstate test-vhost-inflight test-blk-withdraw test-coroutine)
SERIES_QTESTS=(virtio-blk-inflight-test virtio-suspend-test)

b=$BUILD_DIR
export QTEST_QEMU_BINARY=$b/qemu-system-x86_64
export QTEST_QEMU_IMG=$b/qemu-img
export QTEST_QEMU_STORAGE_DAEMON_BINARY=$b/storage-daemon/qemu-storage-daemon
export QTEST_VHOST_USER_BLK_BINARY=$b/contrib/vhost-user-blk/vhost-user-blk

run_test() {
    local t0=$SECONDS
    if ! (cd "$b" && "$@") >"$b/each-commit-test.log" 2>&1; then
        tail -30 "$b/each-commit-test.log"
        die "$(git log -1 --format='%h %s'): $* failed"
    fi
    tested+=" $(basename "$1")($((SECONDS - t0))s)"
}

n=0
for c in $(git rev-list --reverse "$from..$branch"); do
    n=$((n + 1))
    git checkout -q --detach "$c"
    # Regenerate build.ninja for this commit's meson files, then ask only
    # for the targets it knows.
    ninja -C "$b" build.ninja >/dev/null
    known=$(ninja -C "$b" -t targets all | sed 's/: .*//')
    targets=""
    for t in $VLM_BUILD_TARGETS; do
        if grep -qxF "$t" <<<"$known"; then
            targets+=" $t"
        fi
    done
    t0=$SECONDS
    if ! BUILD_TARGETS=$targets "$VLM_TOP/scripts/build.sh" \
        >"$b/each-commit-build.log" 2>&1; then
        grep -E "error|FAILED" "$b/each-commit-build.log" | head -30
        die "$(git log -1 --format='%h %s'): the build failed"
    fi
    built=$((SECONDS - t0))

    tested=""
    changed=$(git diff-tree --no-commit-id --name-only -r "$c")
    for t in "${UNIT_TESTS[@]}"; do
        [ -x "$b/tests/unit/$t" ] || continue
        if [ "$t" = test-coroutine ]; then
            grep -q co-queue/remove <("$b/tests/unit/$t" -l) || continue
            run_test "$b/tests/unit/$t" -p /locking/co-queue/remove
        else
            run_test "$b/tests/unit/$t"
        fi
    done
    for t in "${SERIES_QTESTS[@]}"; do
        [ -x "$b/tests/qtest/$t" ] || continue
        if grep -qE "^tests/qtest/($t\.c|libqos/)" <<<"$changed"; then
            run_test "./tests/qtest/$t"
        fi
    done
    printf '%3d %s: built in %ss; tests:%s\n' "$n" \
        "$(git log -1 --format='%h %s' | cut -c1-60)" "$built" "${tested:- none}"
done
echo "each-commit.sh: $n commits built and tested"
