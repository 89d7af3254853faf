#!/usr/bin/env bash
# Create the developer work tree qemu/: a git repository whose first commit
# (tagged vlm-base) is the pristine base and whose following commits are
# patches/ applied in series order, one commit per patch.
#
#   worktree.sh           create it if missing; if it exists, leave it
#   worktree.sh --force   recreate it from patches/ (discards local commits)
#
# A patch that does not apply exactly (no fuzz, no 3-way merge) stops with
# an error naming the patch.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

force=0
[ "${1:-}" = --force ] && force=1

if [ -d "$WORK_TREE/.git" ] && [ $force = 0 ]; then
    exit 0
fi

"$VLM_TOP/scripts/base.sh"

git_wt() { git -C "$WORK_TREE.tmp" -c core.autocrlf=false -c am.threeWay=false "$@"; }
export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"

rm -rf "$WORK_TREE.tmp"
cp -a "$BASE_DIR" "$WORK_TREE.tmp"
rm -f "$WORK_TREE.tmp/.vlm-base"
git_wt init -q -b master
# Commits made by hand in the work tree carry the project's identity.
git_wt config user.name "$GIT_AUTHOR_NAME"
git_wt config user.email "$GIT_AUTHOR_EMAIL"
git_wt add -A -f .
git_wt commit -q --no-verify -m "QEMU $QEMU_VERSION (base of virtio-lm)"
git_wt tag vlm-base
unset GIT_AUTHOR_DATE GIT_COMMITTER_DATE

n=0
while read -r p; do
    [ -f "$PATCH_DIR/$p" ] || die "patches/series names $p, which does not exist"
    if ! git_wt am -q --no-3way --whitespace=nowarn "$PATCH_DIR/$p" >/dev/null 2>&1; then
        git_wt am --abort >/dev/null 2>&1 || true
        rm -rf "$WORK_TREE.tmp"
        die "patch $p does not apply to the base plus the patches before it"
    fi
    n=$((n + 1))
done < <(series_patches)

rm -rf "$WORK_TREE"
mv "$WORK_TREE.tmp" "$WORK_TREE"
note "work tree $WORK_TREE: base + $n patches"
