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

# The base commit, made once per unpacked base in a bare repository of its
# own (committing the whole tree is most of the cost of a work tree); each
# work tree is a local clone of it.  Bare, so that the cache holds no second
# copy of the sources, nor a work tree that looks like an unpatched qemu/.
# Fixed dates make the commit the same everywhere.
base_git=$VLM_CACHE/base-commit
if [ "$(cat "$base_git/vlm-base-of" 2>/dev/null)" != "$(cat "$BASE_DIR/.vlm-base")" ] ||
   [ -e "$base_git/.git" ]; then
    rm -rf "$base_git" "$base_git.tmp" "$base_git.new"
    cp -a "$BASE_DIR" "$base_git.tmp"
    rm -f "$base_git.tmp/.vlm-base"
    git_b() { git -C "$base_git.tmp" -c core.autocrlf=false "$@"; }
    git_b init -q -b master
    git_b add -A -f .
    GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" \
    GIT_COMMITTER_DATE="2026-01-01T00:00:00Z" \
        git_b commit -q --no-verify -m "QEMU $QEMU_VERSION (base of virtio-lm)"
    git clone -q --bare "$base_git.tmp" "$base_git.new"
    git -C "$base_git.new" remote remove origin
    cp "$BASE_DIR/.vlm-base" "$base_git.new/vlm-base-of"
    rm -rf "$base_git.tmp"
    mv "$base_git.new" "$base_git"
fi

git_wt() { git -C "$WORK_TREE.tmp" -c core.autocrlf=false -c am.threeWay=false "$@"; }

rm -rf "$WORK_TREE.tmp"
git -c core.autocrlf=false clone -q --local "$base_git" "$WORK_TREE.tmp"
git_wt remote remove origin
git_wt tag vlm-base
# Commits made by hand in the work tree carry the project's identity.
git_wt config user.name "$GIT_AUTHOR_NAME"
git_wt config user.email "$GIT_AUTHOR_EMAIL"

mapfile -t series < <(series_patches)
paths=()
for p in "${series[@]}"; do
    [ -f "$PATCH_DIR/$p" ] || die "patches/series names $p, which does not exist"
    paths+=("$PATCH_DIR/$p")
done
# One git am for the whole series; where it stops, the commits made so far
# tell which patch did not apply.
if [ ${#paths[@]} -gt 0 ] &&
   ! git_wt am -q --no-3way --whitespace=nowarn "${paths[@]}" >/dev/null 2>&1; then
    n=$(git_wt rev-list --count vlm-base..HEAD)
    git_wt am --abort >/dev/null 2>&1 || true
    rm -rf "$WORK_TREE.tmp"
    die "patch ${series[$n]} does not apply to the base plus the patches before it"
fi
n=${#series[@]}

rm -rf "$WORK_TREE"
mv "$WORK_TREE.tmp" "$WORK_TREE"
note "work tree $WORK_TREE: base + $n patches"
