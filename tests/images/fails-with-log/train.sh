#!/bin/sh
# Trains for a moment, then fails the way a real algorithm does: a log line and /opt/ml/output/failure.
echo "loading data"
echo "epoch 1 loss=nan"
echo "ValueError: loss diverged at epoch 1" > /opt/ml/output/failure
echo "fatal: loss diverged" >&2
exit 2
