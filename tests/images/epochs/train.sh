#!/bin/sh
# Trains EPOCHS (default 30) one-second epochs. On SIGTERM it saves what it has (taking SAVE_S seconds,
# default 0) and exits 0, as a well-behaved SageMaker image does: an outside `docker kill -s TERM`
# therefore ends it with exit 0 early, which only the platform can tell apart from a completed run.
epochs="${EPOCHS:-30}"
n=0
on_term() {
    echo "SIGTERM: saving after $n of $epochs epochs"
    i=0
    while [ "$i" -lt "${SAVE_S:-0}" ]; do sleep 1 & wait $!; i=$((i + 1)); done
    echo "stopped after $n epochs" > /opt/ml/model/model.txt
    echo saved
    exit 0
}
trap on_term TERM
while [ "$n" -lt "$epochs" ]; do
    sleep 1 & wait $!
    n=$((n + 1))
    echo "epoch $n"
done
echo "trained $n epochs" > /opt/ml/model/model.txt
echo "trained $n epochs"
