"""Command-line arguments for the devices the tests migrate."""


def blockdev(img, failing=False):
    """Block node "disk" on img; its writes fail with EIO when failing."""
    args = ["-blockdev", "driver=file,node-name=f0,filename=%s,cache.direct=on" % img]
    node = "f0"
    if failing:
        # raw emits the write_aio event that blkdebug's rule waits for.
        args += ["-blockdev", "driver=blkdebug,node-name=dbg,image=f0,"
                 "inject-error.0.event=write_aio,inject-error.0.iotype=write,"
                 "inject-error.0.errno=5"]
        node = "dbg"
    return args + ["-blockdev", "driver=raw,node-name=disk,file=%s" % node]


def virtio_blk(img, props="", failing=False, werror="stop"):
    """virtio-blk-pci "blk0" at 04.0 on img, with props appended; writes fail
    with EIO when failing; werror=None keeps the device's default."""
    opts = ",werror=%s" % werror if werror else ""
    return blockdev(img, failing) + [
        "-device", "virtio-blk-pci,id=blk0,drive=disk%s,addr=04.0%s" % (opts, props)]


def vhost_user_blk_device(sock, chardev="vub0", num_queues=1, extra="",
                          inflight_migration=None):
    """vhost-user-blk-pci "blk0" on the back-end at sock; inflight_migration
    None leaves the property out (a QEMU without it accepts the device)."""
    if inflight_migration is not None:
        extra = ",inflight-migration=%s%s" % ("on" if inflight_migration else "off",
                                              extra)
    return ["-chardev", "socket,id=%s,path=%s,reconnect-ms=1000" % (chardev, sock),
            "-device", "vhost-user-blk-pci,id=blk0,chardev=%s,num-queues=%d%s"
            % (chardev, num_queues, extra)]


def vhost_user_fs_device(sock, tag, chardev="vuf0"):
    return ["-chardev", "socket,id=%s,path=%s" % (chardev, sock),
            "-device", "vhost-user-fs-pci,id=fs0,chardev=%s,tag=%s" % (chardev, tag)]
