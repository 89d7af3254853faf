#!/usr/bin/env bash
# Build virtiofsd, the real vhost-user-fs back-end, for the virtiofs
# migration tests.  Output: .cache/virtiofsd/virtiofsd.  Idempotent: does
# nothing when the binary is there.
#
# Debian packages virtiofsd only from trixie on, and trixie's binary needs a
# newer glibc than bookworm's.  So this builds the same version (1.13.2,
# Debian's sources and patches) on bookworm, offline, from Debian's packaged
# Rust crates: trixie's package lists are read through a private apt
# configuration that reuses the mirror the machine already uses (nothing is
# added to the system's sources, nothing from trixie is installed); the
# librust-*-dev packages of librust-virtiofsd-dev's closure are downloaded
# and unpacked into a cargo directory registry, and cargo builds against it
# with --offline.  System packages installed, from bookworm: libcap-ng-dev,
# libseccomp-dev, and cargo-web/rustc-web when no usable cargo is on PATH.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VIRTIOFSD_VERSION=1.13.2
out=$VLM_CACHE/virtiofsd
bin=$out/virtiofsd
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$VIRTIOFSD_VERSION"; then
    exit 0
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
work=$out/work
mkdir -p "$work/debs" "$work/apt/lists/partial" "$work/apt/cache/archives/partial"

# The URI the machine already uses for Debian's main archive (not the
# security archive): the first in the deb822 sources, else sources.list.
debian_uri() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
    if [ -f /etc/apt/sources.list ]; then
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; break } }' \
            /etc/apt/sources.list
    fi
}
uri=$(debian_uri | grep -v security | head -n1 || true)
[ -n "$uri" ] || die "cannot find the Debian archive in the apt sources"
cat >"$work/apt/trixie.sources" <<SRC
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
APT=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$work/apt"
     -o Dir::State::Lists="$work/apt/lists" -o Dir::Cache="$work/apt/cache"
     -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
     -o APT::Sandbox::User=root)

# Bookworm's C libraries to link against, and a Rust toolchain.  Bookworm's
# own cargo (0.66, rustc 1.63) is too old; its cargo-web/rustc-web (kept
# current for the browsers) is recent enough.
need=()
for p in libcap-ng-dev libseccomp-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
rust_ok() {
    command -v cargo >/dev/null && command -v rustc >/dev/null || return 1
    local v
    v=$(rustc --version | awk '{ print $2 }')
    dpkg --compare-versions "${v%%-*}" ge 1.77
}
rust_ok || need+=(cargo-web rustc-web)
if [ ${#need[@]} -gt 0 ]; then
    note "installing ${need[*]}"
    $SUDO apt-get -qq update
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    hash -r
fi
rust_ok || die "no Rust toolchain >= 1.77 (cargo, rustc)"

note "reading trixie's package lists (private apt configuration)"
apt-get "${APT[@]}" update -qq

# The closure of librust-virtiofsd-dev's crate packages, from a simulation.
apt-get "${APT[@]}" install -s --no-install-recommends librust-virtiofsd-dev 2>/dev/null |
    awk '/^Inst librust/ { v = $3; if (v ~ /^\[/) v = $4; gsub(/[()]/, "", v); print $2 "=" v }' \
    >"$work/librust-list.txt"
[ -s "$work/librust-list.txt" ] || die "cannot resolve librust-virtiofsd-dev in trixie"
grep -q "^librust-virtiofsd-dev=$VIRTIOFSD_VERSION" "$work/librust-list.txt" ||
    note "warning: trixie's librust-virtiofsd-dev is not $VIRTIOFSD_VERSION: $(grep virtiofsd-dev "$work/librust-list.txt")"
note "downloading $(wc -l <"$work/librust-list.txt") crate packages"
rm -f "$work"/debs/*.deb
# shellcheck disable=SC2046
(cd "$work/debs" && apt-get "${APT[@]}" download -qq $(cat "$work/librust-list.txt"))

rm -rf "$work/root"
mkdir "$work/root"
for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$work/root"; done
reg=$work/root/usr/share/cargo/registry
src=$(find "$reg" -maxdepth 1 -name 'virtiofsd-*' | sort -V | tail -n1)
[ -n "$src" ] || die "no virtiofsd crate in the unpacked packages"

rm -rf "$work/build"
cp -a "$src" "$work/build"
mkdir -p "$work/build/.cargo"
cat >"$work/build/.cargo/config.toml" <<CFG
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "$reg"
[net]
offline = true
CFG
note "building $(basename "$src") (cargo --release --offline)"
if ! (
    cd "$work/build"
    rm -f Cargo.lock
    cargo generate-lockfile --offline -q
    cargo build --release --offline -q
) >"$work/cargo.log" 2>&1; then
    tail -40 "$work/cargo.log" >&2
    die "cargo build failed (see $work/cargo.log)"
fi
install -m 0755 "$work/build/target/release/virtiofsd" "$bin.tmp"
mv "$bin.tmp" "$bin"
# The sources and crate packages are small; the cargo target dir is not.
rm -rf "$work/build/target" "$work/root"
note "$("$bin" --version | head -n1) at $bin"
