#!/bin/sh
# Trains `epochs` (hyperparameter, default 6) one-second epochs, writing /opt/ml/checkpoints/epoch after each.
# It resumes from that checkpoint when there is one, unless the hyperparameter resume is "no": then it ignores
# its checkpoints and starts over, as an image without resume logic does. On SIGTERM it writes partial.txt to
# /opt/ml/model and exits 0 (its checkpoints are synced already); model.txt is written at the last epoch.
config=/opt/ml/input/config/hyperparameters.json
epochs=$(sed -n 's/.*"epochs": *"\([0-9][0-9]*\)".*/\1/p' "$config")
epochs="${epochs:-6}"
ckpt=/opt/ml/checkpoints
n=0
if grep -q '"resume": *"no"' "$config"; then
    echo "ignoring checkpoints: starting over"
elif [ -f "$ckpt/epoch" ]; then
    n=$(cat "$ckpt/epoch")
    echo "resuming from checkpoint after epoch $n"
fi
trap 'echo "SIGTERM after epoch $n"; echo "$n" > /opt/ml/model/partial.txt; exit 0' TERM
echo "training from epoch $n; files in /opt/ml/model: $(ls /opt/ml/model | wc -l)"
while [ "$n" -lt "$epochs" ]; do
    sleep 1 & wait $!
    n=$((n + 1))
    mkdir -p "$ckpt"
    echo "$n" > "$ckpt/epoch"
    echo "epoch $n"
done
echo "trained to epoch $n" > /opt/ml/model/model.txt
echo "trained $n epochs"
