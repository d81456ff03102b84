#!/bin/sh
# Data-path probe: what a job sees and leaves in /opt/ml, by $MODE (tests/integration/test_data_path.py).
echo "CONFIG $(cat /opt/ml/input/config/hyperparameters.json)"
for f in /opt/ml/input/data/train/*; do [ -f "$f" ] && echo "READ $(basename "$f") $(cat "$f")"; done
case "$MODE" in
model)
  echo secret > /opt/ml/model/secret && chmod 600 /opt/ml/model/secret
  cp /bin/busybox /opt/ml/model/tool && chmod 4755 /opt/ml/model/tool
  mkdir -m 700 /opt/ml/model/private && echo p > /opt/ml/model/private/x
  echo out > /opt/ml/output/data/o.txt
  ;;
s3)
  # An image that calls S3 itself: any answer from the endpoint (403 to this unsigned call included) is S3.
  [ -n "$AWS_ENDPOINT_URL_S3" ] || { echo "S3 UNREACHABLE: no AWS_ENDPOINT_URL_S3" >&2; exit 1; }
  out=$(wget -q -O - "$AWS_ENDPOINT_URL_S3/" 2>&1)
  case "$out" in *403*|*ListAllMyBuckets*) echo "S3 REACHED" ;; *) echo "S3 UNREACHABLE: $out" >&2; exit 1 ;; esac
  echo m > /opt/ml/model/m
  ;;
fastfile)
  if echo x > /opt/ml/input/data/train/new 2>/dev/null; then echo WRITABLE; else echo READONLY; fi
  echo m > /opt/ml/model/m
  ;;
attack)
  for f in $(find /opt/ml/input/data/train -type f); do
    echo more >> "$f"; chmod 6777 "$f"; chown 1234:1234 "$f"; touch -d 2001-01-01 "$f"
    grep -q more "$f" && echo "SEES OWN WRITE"
    : > "$f"; rm -f "$f"
  done
  rm -rf /opt/ml/input/data/train/sub
  echo planted > /opt/ml/input/data/train/planted.txt
  echo ATTACKED
  ;;
ckpt)
  ls /opt/ml/checkpoints | sed 's/^/RESTORED /'
  echo step1 > /opt/ml/checkpoints/c.txt
  echo saved
  trap '' TERM
  while true; do sleep 1; done
  ;;
fail)
  echo "boom: bad input" > /opt/ml/output/failure
  exit 3
  ;;
esac
echo done
