#!/bin/sh
# Prints the container's memory and CPU limits (cgroup v1 or v2), then, with HOG_BYTES set, holds that many
# bytes in memory (`tail` keeps a line without a newline whole) and exits with its status: 137 when the
# kernel's OOM killer ends it.
if [ -f /sys/fs/cgroup/memory.max ]; then
    echo "MEMORY $(cat /sys/fs/cgroup/memory.max)"
    echo "CPU $(cat /sys/fs/cgroup/cpu.max)"
else
    echo "MEMORY $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
    echo "CPU $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
fi
echo "SHM $(df -k /dev/shm | tail -n 1)"
echo "trained" > /opt/ml/model/model.txt
if [ -n "$HOG_BYTES" ]; then
    # Four processes of a quarter each: no single allocation is refused before the cgroup limit is reached.
    echo "holding $HOG_BYTES bytes"
    part=$((HOG_BYTES / 4))
    pids=""
    for _ in 1 2 3 4; do
        head -c "$part" /dev/zero | tail > /dev/null &
        pids="$pids $!"
    done
    rc=0
    for pid in $pids; do
        wait "$pid" || rc=$?
    done
    exit $rc
fi
