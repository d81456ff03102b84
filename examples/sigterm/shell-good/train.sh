#!/bin/sh
# Trains for SECONDS_TO_TRAIN, else hyperparameter "seconds", else 30 seconds; saves the model on SIGTERM.
# The work runs as `sleep 1 &` + `wait` because sh runs a trap only between commands: a foreground
# sleep would delay the handler by up to a second, `wait` returns as soon as the signal arrives.
hyperparameters=/opt/ml/input/config/hyperparameters.json
seconds=${SECONDS_TO_TRAIN:-}
if [ -z "$seconds" ] && [ -f "$hyperparameters" ]; then
    seconds=$(sed -n 's/.*"seconds" *: *"\([0-9][0-9]*\)".*/\1/p' "$hyperparameters")
fi
seconds=${seconds:-30}
elapsed=0

save_and_exit() {
    echo "SIGTERM after ${elapsed}s of ${seconds}s: saving the model"
    echo "interrupted after ${elapsed} of ${seconds} seconds" > /opt/ml/model/model.txt
    exit 0
}
trap save_and_exit TERM

mkdir -p /opt/ml/model
echo "training for ${seconds}s"
while [ "$elapsed" -lt "$seconds" ]; do
    sleep 1 &
    wait $!
    elapsed=$((elapsed + 1))
    echo "step ${elapsed}/${seconds}"
done
echo "trained for ${seconds} seconds" > /opt/ml/model/model.txt
echo "done"
