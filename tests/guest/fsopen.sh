#!/bin/sh
# Mount the virtiofs TAG on /mnt and append a line to FILE there, whose
# open(2) in virtiofsd may block (bench/virtiofs_blocked_request.py holds a
# lease on it on the host):
#   vlm: fsopen mounted
#   vlm: fsopen append ok|error <message>   once the open and write return
# The line appended is "vlm-append <TOKEN>".  The guest then stays up.
tag=${1:-vlmfs}
file=${2:-leased.txt}
token=${3:-none}
mount -t virtiofs "$tag" /mnt || { echo "vlm: fsopen mount failed"; exit 1; }
echo "vlm: fsopen mounted"
if echo "vlm-append $token" 2>/tmp/append.err >>"/mnt/$file"; then
    echo "vlm: fsopen append ok"
else
    echo "vlm: fsopen append error $(tr '\n' ' ' </tmp/append.err)"
fi
# Stay up: the benchmark reads the outcome on the destination.
while :; do sleep 1; done
