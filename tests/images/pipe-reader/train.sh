#!/bin/sh
# A Pipe-mode reader: copies epochs 0..EPOCHS-1 of channel CHANNEL from their FIFOs into /opt/ml/model/epoch<i>.
# Each FIFO may not exist yet when the previous epoch ends (contract.md §3), so it waits for it to appear.
# MODE=never exits at once without opening any pipe (the platform must not hang on it).
channel=${CHANNEL:-train}
epochs=${EPOCHS:-3}
[ "$MODE" = never ] && { echo "not reading"; exit 0; }
i=0
while [ "$i" -lt "$epochs" ]; do
    fifo=/opt/ml/input/data/${channel}_$i
    waited=0
    while [ ! -p "$fifo" ]; do
        [ "$waited" -ge 1200 ] && { echo "no $fifo after 60 s" >&2; exit 3; }
        usleep 50000
        waited=$((waited + 1))
    done
    cat "$fifo" > "/opt/ml/model/epoch$i"
    echo "epoch $i: $(wc -c < "/opt/ml/model/epoch$i") bytes"
    i=$((i + 1))
done
[ -e "/opt/ml/input/data/$channel" ] && echo "channel directory exists"
exit 0
