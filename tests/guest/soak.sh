#!/bin/sh
# The soak's workload: WRITERS O_DIRECT writers on /dev/DISK, until the VM
# is killed, each writing 4 KiB blocks stamped with (writer, sequence)
# round-robin over its own BLOCKS blocks, and verifying every block before
# it writes it again: the block must hold the last stamp written to it and
# completed.  A completed write that was lost, a write done twice (an old
# stamp over a newer one), a torn block, or a read that does not return
# what was written shows as
#   vlm: mismatch w=<writer> blk=<block> want='<stamp>' got='<first line>'
# Every second:
#   vlm: soak t=<seconds> writes=<completed> bad=<mismatches> ioerr=<n>
writers=${1:-4}
disk=${2:-vda}
blocks=${3:-16}
dev=/dev/$disk
[ -b $dev ] || { echo "vlm: no $dev"; exit 1; }
echo "vlm: ready writers=$writers disk=$disk blocks=$blocks"

stamp() {
    printf 'vlm-block w=%04d s=%08d' "$1" "$2"
}

writer() {
    w=$1 s=0
    while :; do
        blk=$((w * blocks + s % blocks))
        if [ "$s" -ge "$blocks" ]; then
            want=$(stamp "$w" $((s - blocks)))
        else
            want=
        fi
        got=$(dd if=$dev bs=4096 skip=$blk count=1 iflag=direct 2>/dev/null |
              tr -d '\0' | head -n1)
        if [ "$got" != "$want" ]; then
            echo "vlm: mismatch w=$w blk=$blk want='$want' got='$got'"
            echo x >>/tmp/bad
        fi
        if stamp "$w" "$s" | dd of=$dev bs=4096 seek=$blk oflag=direct \
                conv=sync,notrunc 2>/dev/null; then
            echo x >>/tmp/writes.$w
            s=$((s + 1))
        else
            # The write may or may not have reached the disk: stop here,
            # as the block's content is unknown from now on.
            echo "vlm: ioerr w=$w s=$s"
            echo x >>/tmp/ioerr
            return
        fi
    done
}

: >/tmp/bad
: >/tmp/ioerr
i=0
while [ $i -lt "$writers" ]; do
    : >/tmp/writes.$i
    writer $i &
    i=$((i + 1))
done
t=0
while :; do
    sleep 1
    t=$((t + 1))
    echo "vlm: soak t=$t writes=$(cat /tmp/writes.* | wc -l)" \
         "bad=$(wc -l </tmp/bad) ioerr=$(wc -l </tmp/ioerr)"
done
