#!/usr/bin/env bash
# Unpack the pinned QEMU base into .cache/qemu-base (idempotent).
#
# Sources, in order of preference:
#   QEMU_SRC=<path>     an upstream v10.2.2 checkout (copied as is)
#   ../shared/qemu-base Debian's source package, verified with SHA256SUMS
#   apt-get source      the same files, fetched through a private apt
#                       configuration that reuses the machine's own mirror
# Debian's +ds tarball needs Debian's own patches to configure, so the
# source package is unpacked with dpkg-source, which applies them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

stamp=$BASE_DIR/.vlm-base
want="${QEMU_SRC:-debian $DEB_VERSION}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
rm -rf "$BASE_DIR" "$BASE_DIR.tmp"
mkdir -p "$VLM_CACHE"

if [ -n "${QEMU_SRC:-}" ]; then
    [ -f "$QEMU_SRC/VERSION" ] || die "QEMU_SRC=$QEMU_SRC has no VERSION file"
    grep -qx "$QEMU_VERSION" "$QEMU_SRC/VERSION" ||
        die "QEMU_SRC is $(cat "$QEMU_SRC/VERSION"), want $QEMU_VERSION"
    note "using upstream tree $QEMU_SRC"
    mkdir -p "$BASE_DIR.tmp"
    if [ -e "$QEMU_SRC/.git" ]; then
        git -C "$QEMU_SRC" archive --format=tar HEAD | tar -x -C "$BASE_DIR.tmp"
    else
        cp -a "$QEMU_SRC/." "$BASE_DIR.tmp/"
    fi
    mv "$BASE_DIR.tmp" "$BASE_DIR"
    echo "$want" >"$stamp"
    exit 0
fi

dl=$VLM_CACHE/qemu-deb
mkdir -p "$dl"
shared=$VLM_TOP/../shared/qemu-base
verify() { (cd "$1" && sha256sum --quiet -c SHA256SUMS); }

if [ -f "$shared/$DEB_DSC" ] && [ -f "$shared/SHA256SUMS" ]; then
    verify "$shared" || die "checksum mismatch in $shared"
    cp "$shared"/qemu_10.2.2+ds* "$shared/SHA256SUMS" "$dl/"
else
    note "no ../shared/qemu-base: fetching $DEB_VERSION with apt-get source"
    # A private apt configuration with deb-src entries for the suites that
    # may carry this version, on the mirror the machine already uses.
    uri=$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+' \
              /etc/apt/sources.list.d/*.sources 2>/dev/null |
          awk '{print $2}' | grep -v security | head -n1)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" { print $2; exit }' \
                               /etc/apt/sources.list 2>/dev/null)
    [ -n "$uri" ] || die "no Debian mirror in the apt sources"
    apt=$dl/apt
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts"
    cat >"$apt/parts/src.sources" <<SRC
Types: deb-src
URIs: $uri
Suites: sid trixie-backports forky
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    APT=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt/parts"
         -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache")
    apt-get "${APT[@]}" -qq update
    (cd "$dl" && apt-get "${APT[@]}" -qq --download-only source "qemu=$DEB_VERSION")
    if [ -f "$shared/SHA256SUMS" ]; then
        cp "$shared/SHA256SUMS" "$dl/"
    else
        # No reference sums: check the files against the signed .dsc.
        (cd "$dl" && dscverify --no-sig-check "$DEB_DSC" >/dev/null 2>&1) ||
            note "dscverify unavailable; relying on apt's signed indices"
    fi
fi
[ -f "$dl/SHA256SUMS" ] && { verify "$dl" || die "checksum mismatch in $dl"; }

(cd "$dl" && dpkg-source --no-check -q -x "$DEB_DSC" "$BASE_DIR.tmp" >/dev/null)
# Debian's packaging and quilt state are not part of the base tree.
rm -rf "$BASE_DIR.tmp/debian" "$BASE_DIR.tmp/.pc"
# dpkg-source leaves a copy of the orig tarball beside the target directory.
rm -f "$VLM_CACHE"/qemu_*.orig.tar.*
mv "$BASE_DIR.tmp" "$BASE_DIR"
echo "$want" >"$stamp"
note "base unpacked in $BASE_DIR"
