#!/bin/sh
# Deliberately broken: no SIGTERM trap. As PID 1, sh keeps the kernel's default for PID 1 (SIGTERM
# ignored), so a stop is only ended by SIGKILL at the grace period and no model is saved.
hyperparameters=/opt/ml/input/config/hyperparameters.json
seconds=${SECONDS_TO_TRAIN:-}
if [ -z "$seconds" ] && [ -f "$hyperparameters" ]; then
    seconds=$(sed -n 's/.*"seconds" *: *"\([0-9][0-9]*\)".*/\1/p' "$hyperparameters")
fi
seconds=${seconds:-30}
elapsed=0

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
