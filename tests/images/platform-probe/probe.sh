#!/bin/sh
# Reports what the platform gave the container (argv, PID 1, hostname, config, env, data, /opt/ml/code),
# then behaves as MODE says: ok | fail | trap (saves the model on SIGTERM) | ignore (no SIGTERM handler).
echo "ARGV $0 argc=$# [$*]"
echo "PID1 $(tr '\0' ' ' < /proc/1/cmdline)"
echo "HOST $(hostname)"
for f in /opt/ml/input/config/*.json; do
    echo "CONFIG $(basename "$f") $(cat "$f")"
done
env | sort | sed 's/^/ENV /'
find /opt/ml/input/data | sort | sed 's/^/DATA /'
for d in /opt/ml/input/data/*/; do
    [ -d "$d" ] || continue
    if touch "${d}.probe-write" 2>/dev/null; then
        rm -f "${d}.probe-write"
        echo "WRITE ${d} ok"
    else
        echo "WRITE ${d} refused"
    fi
done
[ -f /opt/ml/code/x ] && echo "CODE $(cat /opt/ml/code/x)"

loop() {
    echo "training"
    i=0
    while :; do
        i=$((i + 1))
        echo "step $i"
        sleep 1 &
        wait $!
    done
}

case "${MODE:-ok}" in
ok)
    echo "trained" > /opt/ml/model/model.txt
    exit 0
    ;;
fail)
    mkdir -p /opt/ml/model/sub /opt/ml/output/data
    echo "partial" > /opt/ml/model/sub/weights.bin
    echo "loss=9" > /opt/ml/output/data/metrics.txt
    head -c 1024 /dev/zero | tr '\0' a > /opt/ml/output/failure
    head -c 3976 /dev/zero | tr '\0' b >> /opt/ml/output/failure
    exit 3
    ;;
trap)
    trap 'echo "SIGTERM received"; echo saved > /opt/ml/model/stopped.txt; exit 0' TERM
    loop
    ;;
ignore)
    loop
    ;;
esac
