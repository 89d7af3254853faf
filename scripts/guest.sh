#!/usr/bin/env bash
# Build the test guest from Debian's packages: the kernel of
# linux-image-cloud-amd64 and an initramfs holding busybox-static, the virtio
# modules that kernel builds as modules, and the workloads in tests/guest/.
# Output: .cache/guest/{vmlinuz,initramfs.gz}.  Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=$VLM_CACHE/guest
inputs=$(cat "$0" "$VLM_TOP"/tests/guest/* | sha256sum | cut -c1-16)
if [ -f "$out/initramfs.gz" ] && [ "$(cat "$out/.inputs" 2>/dev/null)" = "$inputs" ]; then
    exit 0
fi
mkdir -p "$out/deb"

# The kernel package the cloud meta-package points to, downloaded, not
# installed.
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
       awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kpkg" ] || { apt-get -qq update; kpkg=$(apt-cache depends linux-image-cloud-amd64 |
       awk '/Depends: linux-image-[0-9]/ { print $2; exit }'); }
[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-amd64"
if ! ls "$out/deb/${kpkg}"_*.deb >/dev/null 2>&1; then
    rm -f "$out"/deb/*.deb
    (cd "$out/deb" && apt-get -qq download "$kpkg")
fi
rm -rf "$out/kroot" "$out/root"
dpkg-deb -x "$out"/deb/"${kpkg}"_*.deb "$out/kroot"
kver=${kpkg#linux-image-}
cp "$out/kroot/boot/vmlinuz-$kver" "$out/vmlinuz"

bb=/bin/busybox
file -b "$bb" 2>/dev/null | grep -q static || bb=/usr/bin/busybox
[ -x "$bb" ] || die "busybox-static is not installed (scripts/deps.sh)"

r=$out/root
mkdir -p "$r"/{bin,sbin,dev,proc,sys,tmp,mnt,lib/modules,vlm}
cp "$bb" "$r/bin/busybox"
for app in $("$r/bin/busybox" --list); do
    [ -e "$r/bin/$app" ] || ln -s busybox "$r/bin/$app"
done
# Order matters: each module before the ones that use it.
mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
      virtio_mmio virtio_blk failover net_failover virtio_net virtio_console
      scsi_common scsi_mod virtio_scsi sd_mod fuse virtiofs"
: >"$r/lib/modules/load-order"
for m in $mods; do
    f=$(find "$out/kroot/lib/modules/$kver" -name "$m.ko*" | head -n1)
    [ -n "$f" ] || continue          # built in
    case "$f" in
        *.xz) xz -dc "$f" >"$r/lib/modules/$m.ko" ;;
        *.zst) zstd -qdc "$f" >"$r/lib/modules/$m.ko" ;;
        *) cp "$f" "$r/lib/modules/$m.ko" ;;
    esac
    echo "$m" >>"$r/lib/modules/load-order"
done
cp "$VLM_TOP"/tests/guest/init "$r/init"
cp "$VLM_TOP"/tests/guest/*.sh "$r/vlm/"
chmod +x "$r/init" "$r"/vlm/*.sh
(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.gz"
rm -rf "$out/kroot" "$r"
echo "$inputs" >"$out/.inputs"
note "guest: $kpkg, $(du -h "$out/initramfs.gz" | cut -f1) initramfs"
