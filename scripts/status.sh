#!/usr/bin/env bash
# Report whether the work tree and patches/ differ.  Exit 0 when they match,
# 1 when they do not (uncommitted changes, or commits not exported).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -d "$WORK_TREE/.git" ] || die "no work tree at $WORK_TREE"
rc=0
dirty=$(git -C "$WORK_TREE" status --porcelain --untracked-files=no)
if [ -n "$dirty" ]; then
    echo "work tree has uncommitted changes:"
    echo "$dirty" | sed 's/^/  /'
    rc=1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Export the committed state only; uncommitted changes were reported above.
VLM_ALLOW_DIRTY=1 "$VLM_TOP/scripts/export.sh" "$tmp/p" 2>/dev/null ||
    { [ $rc = 1 ] || die "export failed"; exit 1; }
if ! diff -ru --exclude='*~' "$PATCH_DIR" "$tmp/p" >"$tmp/diff"; then
    echo "work tree commits and patches/ differ (run scripts/export.sh):"
    grep -E '^(Only in|diff -ru)' "$tmp/diff" | sed "s|$tmp/p|<work tree>|; s/^/  /"
    rc=1
fi
[ $rc = 0 ] && echo "work tree and patches/ match ($(series_patches | wc -l) patches)"
exit $rc
