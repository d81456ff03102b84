#!/usr/bin/env bash
# SM-GPU-VISIBLE on a lent GPU machine (H100/H200): the `devices` wiring against a real GPU.
#
# Here first: tests/device/prepare.sh. Then with the device tool, in the repo root:
#   run(command="bash tests/device/gpu_check.sh", carry=[".device"], timeout_s=420)
# That machine: Python 3.12 + pytest, no Docker until start-docker.sh (dockerd --bridge=none, so
# single-host jobs run with network "none"), driver under /usr/local/nvidia, no NVIDIA container
# toolkit (`--gpus` fails), so --sm-gpus devices is the mode that can work there.
#
# Expected: run 1 (devices) passes with /dev/nvidia0 and `nvidia-smi -L` listing 1 GPU; run 2 (none +
# a probe that needs a GPU) fails naming the probe; run 3 (auto) skips naming the missing toolkit.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
export PYTHONUNBUFFERED=1
site=${TMPDIR:-/tmp}/sm-contract-site
mkdir -p "$site" && tar -C "$site" -xJf .device/site.tar.xz || exit 1
export PYTHONPATH=$site:$repo${PYTHONPATH:+:$PYTHONPATH}
python3 -c 'import docker, boto3, moto, flask, pytest_sagemaker_contract.plugin' || exit 1
echo "== host"
ls -l /dev/nvidia* 2>&1
ls /usr/local/nvidia /usr/local/nvidia/bin 2>&1 | head -20
# shellcheck disable=SC1091
source .device/start-docker.sh
python3 .device/glibc-image.py || exit 1
echo "== detection and plans"
python3 - <<'PY'
import docker
from pytest_sagemaker_contract.platform.gpu import detect, gpu_plan
d = detect(docker.from_env().info())
print(d.reason)
print(d)
for mode in ("auto", "devices", "none"):
    print(mode, gpu_plan("ml.p5.4xlarge", mode, d))
PY
work=$(mktemp -d)
out=${OUT:-$work}
cd "$work" || exit 1  # outside the repo: no pyproject addopts, no tests/ collected, only the suite
suite() {
  local name=$1
  shift
  echo "== $name: $*"
  python3 -m pytest -p no:cacheprovider -p pytest_sagemaker_contract.plugin --sm-image device/glibc:1 \
    -k SM-GPU --sm-instance-type ml.p5.4xlarge -rA --sm-report "$out/$name.json" --sm-grace 5 "$@" 2>&1 \
    | tee "$out/$name.log"
  return "${PIPESTATUS[0]}"
}
suite devices --sm-gpus devices --sm-gpu-probe 'test -c /dev/nvidia0 && test -c /dev/nvidiactl'
rc_devices=$?
suite none --sm-gpus none --sm-gpu-probe 'test -e /dev/nvidia0'
rc_none=$?
suite auto --sm-gpus auto
rc_auto=$?
echo "== summary"
echo "devices: exit $rc_devices (expected 0: passed)"
echo "none:    exit $rc_none (expected 1: the probe fails without GPUs)"
echo "auto:    exit $rc_auto (expected 0: skipped, no NVIDIA container toolkit)"
docker_leftovers=$(python3 -c 'import docker; print(len(docker.from_env().containers.list(all=True, filters={"label": "sm-contract"})))')
echo "containers left: $docker_leftovers"
[ "$rc_devices" = 0 ] && [ "$rc_none" = 1 ] && [ "$rc_auto" = 0 ] && [ "$docker_leftovers" = 0 ]
