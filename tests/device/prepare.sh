#!/usr/bin/env bash
# Prepare .device/ for tests/device/gpu_check.sh (run here, in the checkout, before the device run).
#
# The lent GPU machine has Python 3.12 with pytest, requests, urllib3, jinja2, werkzeug, pyyaml and
# python-dateutil, but no docker-py, boto3/botocore, moto or flask, and no registry. Those travel as
# one pre-installed site directory, .device/site.tar.xz (~10 MB), rather than wheels (~27 MB): the
# botocore wheel alone is 15 MB of service models, of which the platform reads s3, sagemaker and sts.
# moto comes without its [server] extra (which pulls cfn-lint and sympy): flask and flask-cors are
# all its S3 server needs. Everything must fit the 64 MiB a device call carries, next to the ~35 MB
# engine that ../shared/tools/device-docker packs.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
mkdir -p "$(git rev-parse --git-path info)"  # device-docker appends /.device/ to info/exclude
"$top/../shared/tools/device-docker" prepare
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Pinned to what this checkout is tested with; --no-deps: the list is complete (see above).
python3 - > "$work/requirements.txt" <<'PY'
from importlib.metadata import version
for name in ("docker", "boto3", "botocore", "s3transfer", "jmespath", "moto", "xmltodict", "responses",
             "cryptography", "cffi", "pycparser", "flask", "flask-cors", "itsdangerous", "blinker"):
    print(f"{name}=={version(name)}")
PY
python3 -m pip install -q --no-deps --no-compile --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --target "$work/site" -r "$work/requirements.txt" 2>&1 | grep -v -e '^WARNING' || true
for needed in docker boto3 botocore moto flask cryptography; do
  [ -d "$work/site/$needed" ] || { echo "prepare.sh: $needed did not install" >&2; exit 1; }
done
# botocore's models: keep the services the platform and moto's S3 use, and the shared files.
find "$work/site/botocore/data" -mindepth 1 -maxdepth 1 -type d \
  ! -name s3 ! -name sagemaker ! -name sts -exec rm -rf {} +
cp "$work/requirements.txt" "$work/site/SM_CONTRACT_REQUIREMENTS.txt"
tar -C "$work/site" -c . | xz -T0 -6 > .device/site.tar.xz
rm -rf .device/wheels
ls -la .device
du -sh .device
total=$(du -sk .device | cut -f1)
if [ "$total" -gt $((56 * 1024)) ]; then
  echo "prepare.sh: .device is ${total} KiB: too much to carry next to the repository (64 MiB per call)" >&2
  exit 1
fi
