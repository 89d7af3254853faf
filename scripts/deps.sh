#!/usr/bin/env bash
# Install, from Debian's packages, everything the virtio-lm build, tests,
# demo and benchmarks need.  Idempotent and quiet when already satisfied.
#
# On bookworm meson >= 1.5 comes from bookworm-backports.  The backports
# entry is derived from the machine's own apt sources: no mirror host name
# is written anywhere here.
set -euo pipefail

PKGS=(
    build-essential gcc-multilib pkg-config ninja-build git dpkg-dev ccache
    python3 python3-venv flex bison
    libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev
    libcap-ng-dev libattr1-dev libaio-dev
    seabios ipxe-qemu
    socat busybox-static cpio xz-utils
    gnuplot-nox file python3-pytest
    # libFuzzer and its sanitizers (scripts/fuzz.py); the runtime is only
    # a recommendation of clang, which --no-install-recommends skips
    clang libclang-rt-14-dev
)

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
list_dir=/etc/apt/sources.list.d
our_list=$list_dir/virtio-lm.sources

# The URI the machine already uses for Debian's main archive.
debian_uri() {
    local f
    for f in $list_dir/*.sources; do
        [ -f "$f" ] || continue
        awk -v cn="$codename" '
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == cn) hit = 1 }
            /^$/ { if (hit && uri) { print uri; exit } hit = 0; uri = "" }
            END { if (hit && uri) print uri }' "$f"
    done | head -n1
    if [ -f /etc/apt/sources.list ]; then
        awk -v cn="$codename" '$1 == "deb" && $3 == cn { print $2; exit }' \
            /etc/apt/sources.list
    fi
}

need_update=0
if [ "$codename" = bookworm ] && [ ! -f "$our_list" ]; then
    uri=$(debian_uri | head -n1)
    if [ -z "$uri" ]; then
        echo "deps.sh: cannot find the Debian archive in the apt sources" >&2
        exit 1
    fi
    $SUDO tee "$our_list" >/dev/null <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    need_update=1
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
        missing+=("$p")
done

meson_ok() {
    command -v meson >/dev/null &&
        dpkg --compare-versions "$(meson --version 2>/dev/null)" ge 1.5.0
}

if [ ${#missing[@]} -eq 0 ] && meson_ok; then
    exit 0
fi

if [ $need_update = 1 ] || [ ! -d /var/lib/apt/lists ] ||
   [ -z "$(ls /var/lib/apt/lists/*Packages* 2>/dev/null)" ] ||
   ! grep -qs bookworm-backports /var/lib/apt/lists/*Release 2>/dev/null; then
    $SUDO apt-get -qq update
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "deps.sh: installing ${missing[*]}"
    $SUDO apt-get -qq install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! meson_ok; then
    echo "deps.sh: installing meson from ${codename}-backports"
    if [ "$codename" = bookworm ]; then
        $SUDO apt-get -qq install -y --no-install-recommends \
            -t bookworm-backports meson >/dev/null
    else
        $SUDO apt-get -qq install -y --no-install-recommends meson >/dev/null
    fi
fi
meson_ok || { echo "deps.sh: meson >= 1.5 not available" >&2; exit 1; }
