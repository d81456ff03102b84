#!/bin/sh
# Under Debian's real tini, which forwards SIGTERM: the trainer ignores the forwarded signal and trains on.
trap '' TERM
steps=$(sed -n 's/.*"steps": *"\([0-9]*\)".*/\1/p' /opt/ml/input/config/hyperparameters.json)
echo saved > /opt/ml/model/model.txt
n=0
while [ "$n" -lt "${steps:-6}" ]; do n=$((n + 1)); echo "step $n"; sleep 1; done
echo "training done"
