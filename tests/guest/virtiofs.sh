#!/bin/sh
# Mount the virtiofs TAG on /mnt and keep two files open across a migration:
# read.dat for reading (fd 3, not read yet, so the guest caches none of it)
# and append.txt for appending (fd 4).  Then wait for the host to create
# /mnt/go, and use them:
#   vlm: vfs ready                      fds open, one line appended via fd 4
#   vlm: vfs go
#   vlm: vfs read bytes=<n> md5=<md5>   what fd 3 reads, from offset 0
#   vlm: vfs read error <message>       or why it could not
#   vlm: vfs append ok|error            a second line appended via fd 4
#   vlm: vfs create ok|error            a new file, new.txt
#   vlm: vfs list <names>               ls /mnt
#   vlm: vfs done
# The lines appended are "vlm-append before <TOKEN>" and
# "vlm-append after <TOKEN>"; new.txt holds "vlm-new <TOKEN>".
tag=${1:-vlmfs}
token=${2:-none}
mount -t virtiofs "$tag" /mnt || { echo "vlm: vfs mount failed"; exit 1; }
exec 3</mnt/read.dat || { echo "vlm: vfs open read.dat failed"; exit 1; }
exec 4>>/mnt/append.txt || { echo "vlm: vfs open append.txt failed"; exit 1; }
echo "vlm-append before $token" >&4 || echo "vlm: vfs append-before error"
echo "vlm: vfs ready"
while [ ! -e /mnt/go ]; do sleep 0.2; done
echo "vlm: vfs go"
if cat <&3 >/tmp/read.out 2>/tmp/read.err; then
    echo "vlm: vfs read bytes=$(wc -c </tmp/read.out) md5=$(md5sum </tmp/read.out | cut -d' ' -f1)"
else
    echo "vlm: vfs read error $(tr '\n' ' ' </tmp/read.err)"
fi
if echo "vlm-append after $token" >&4; then
    echo "vlm: vfs append ok"
else
    echo "vlm: vfs append error"
fi
exec 3<&- 4>&-
if echo "vlm-new $token" >/mnt/new.txt && sync; then
    echo "vlm: vfs create ok"
else
    echo "vlm: vfs create error"
fi
echo "vlm: vfs list $(ls /mnt | tr '\n' ' ')"
echo "vlm: vfs done"
