#!/bin/sh
# After DELAY idle seconds, keep WRITERS O_DIRECT writers busy on /dev/vda
# for SECONDS seconds, each
# writing 4 KiB blocks stamped with (writer, sequence) to its own area, then
# read every block back and verify it.  Prints, every half second, the
# device's in-flight count and completed write requests:
#   vlm: stat <t> inflight=<n> writes=<completed>
# and at the end
#   vlm: verify ok|bad <blocks checked> <mismatches>
writers=${1:-16}
seconds=${2:-20}
delay=${3:-0}                # idle seconds before the writers start
disk=${4:-vda}               # vda (virtio-blk) or sda (virtio-scsi)
dev=/dev/$disk
blocks=64                    # blocks per writer area, reused round-robin
[ -b $dev ] || { echo "vlm: no $dev"; exit 1; }
echo "vlm: ready writers=$writers seconds=$seconds delay=$delay"
[ "$delay" -gt 0 ] && { echo "vlm: idle"; sleep "$delay"; echo "vlm: start"; }

writer() {
    w=$1 s=0
    while [ ! -e /tmp/stop ]; do
        blk=$((w * blocks + s % blocks))
        # One program run per request (printf is the shell's): conv=sync
        # pads the stamp with zeros to the 4 KiB block.  Cheap, so that a
        # slow guest still keeps the back-end's queue full.
        printf 'vlm-block w=%04d s=%08d\n' "$w" "$s" |
            dd of=$dev bs=4096 seek=$blk oflag=direct conv=sync,notrunc \
            2>/dev/null || { echo "vlm: ioerr w=$w s=$s"; break; }
        echo "$s" >/tmp/last.$w
        s=$((s + 1))
    done
}
i=0
while [ $i -lt "$writers" ]; do writer $i & i=$((i + 1)); done
t=0
while [ $t -lt $((seconds * 2)) ]; do
    set -- $(cat /sys/block/$disk/inflight)
    inflight=$(( $1 + $2 ))
    set -- $(cat /sys/block/$disk/stat)
    echo "vlm: stat $t inflight=$inflight writes=$5"
    sleep 0.5
    t=$((t + 1))
done
touch /tmp/stop
wait
echo "vlm: writers stopped"

# Verify: the last block each writer completed must carry its stamp.
checked=0 bad=0
i=0
while [ $i -lt "$writers" ]; do
    if [ -f /tmp/last.$i ]; then
        s=$(cat /tmp/last.$i)
        blk=$((i * blocks + s % blocks))
        want=$(printf 'vlm-block w=%04d s=%08d' "$i" "$s")
        got=$(dd if=$dev bs=4096 skip=$blk count=1 iflag=direct 2>/dev/null | head -n1)
        checked=$((checked + 1))
        [ "$got" = "$want" ] || { bad=$((bad + 1)); echo "vlm: mismatch w=$i s=$s got='$got'"; }
    fi
    i=$((i + 1))
done
if [ $bad = 0 ]; then echo "vlm: verify ok $checked 0"; else echo "vlm: verify bad $checked $bad"; fi
