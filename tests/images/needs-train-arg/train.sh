#!/bin/sh
# Insists on the `train` argument, as many hand-written entrypoints do.
if [ "$1" != "train" ]; then
    echo "usage: train.sh train (got: '$*')" >&2
    exit 1
fi
echo "trained" > /opt/ml/model/model.txt
