#!/bin/sh
# A trainer with no SIGTERM trap, run as PID 1: the kernel drops SIGTERM, the training simply runs on.
# Saves the model first, so only causation can tell a right stop from a natural end.
steps=$(sed -n 's/.*"steps": *"\([0-9]*\)".*/\1/p' /opt/ml/input/config/hyperparameters.json)
echo saved > /opt/ml/model/model.txt
n=0
while [ "$n" -lt "${steps:-6}" ]; do n=$((n + 1)); echo "step $n"; sleep 1; done
echo "training done"
