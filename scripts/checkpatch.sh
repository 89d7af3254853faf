#!/usr/bin/env bash
# Run QEMU's scripts/checkpatch.pl (from the pristine base) over every patch
# in patches/series.  Prints one line per patch; exits non-zero, naming the
# patches, when any has an error or a warning (none is accepted).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$VLM_TOP/scripts/base.sh"
bad=()
n=0
while read -r p; do
    n=$((n + 1))
    [ -f "$PATCH_DIR/$p" ] || { echo "FAIL $p: listed in series but missing"; bad+=("$p"); continue; }
    # checkpatch.pl exits 0 on warnings: a warning fails the check as well.
    if out=$(cd "$BASE_DIR" && ./scripts/checkpatch.pl --color=never -q "$PATCH_DIR/$p" 2>&1) &&
       ! grep -q '^\(WARNING\|ERROR\):' <<<"$out"; then
        echo "ok   $p"
    else
        echo "FAIL $p"
        echo "$out" | sed 's/^/     /'
        bad+=("$p")
    fi
done < <(series_patches)
# Patches not listed in the series are a mistake too.  (Not a pipe into
# grep -q: under pipefail, the writer's SIGPIPE when grep stops early
# would fail the pipeline.)
listed=$(series_patches)
for f in "$PATCH_DIR"/*.patch; do
    [ -e "$f" ] || continue
    grep -qxF "$(basename "$f")" <<<"$listed" ||
        { echo "FAIL $(basename "$f"): not listed in patches/series"; bad+=("$(basename "$f")"); }
done
if [ ${#bad[@]} -gt 0 ]; then
    die "checkpatch failed for: ${bad[*]}"
fi
note "$n patches pass checkpatch"
