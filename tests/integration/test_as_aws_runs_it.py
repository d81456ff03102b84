"""What a real job's environment holds (contract.md §11), observed from inside real containers.

Each test runs a busybox image on the real engine with the session's real S3 (moto): host names,
credentials, disk space and uncompressed output as SageMaker gives them, not as a lenient local run would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingJobResult, TrainingPlatform
from pytest_sagemaker_contract.spec import TrainingJobSpec, parse_request

from .conftest_helpers import IMAGES

#: Containers reach this session's S3 directly, at Docker's bridge gateway (as the plugin sets it up).
pytestmark = [pytest.mark.usefixtures("no_leftovers"), pytest.mark.local_platform(grace_s=10, bridge=True)]


@pytest.fixture(scope="module")
def busybox(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "cluster-probe")


def script_spec(image: str, prefix: str, script: str, **overrides: Any) -> TrainingJobSpec:
    """A job whose entrypoint runs `script` with sh; `request` (a callable) edits the request before parsing."""
    edit = overrides.pop("request", None)
    env = {"SCRIPT": script, **overrides.pop("environment", {})}  # an Environment value may hold 512 characters
    entrypoint = ["/bin/sh", "-c", 'eval "$SCRIPT"']
    req = with_overrides(None, name=job_name(prefix), image=image, entrypoint=entrypoint, environment=env, **overrides)
    if edit is not None:
        edit(req)
    return parse_request(req)


def tagged(result: TrainingJobResult, tag: str) -> list[str]:
    return [line.split(" ", 1)[1] if " " in line else "" for line in result.logs.splitlines() if line.startswith(tag)]


# -- OutputDataConfig.CompressionType NONE --------------------------------------------------------------

WRITE_OUTPUTS = (
    "mkdir -p /opt/ml/model/sub && echo w > /opt/ml/model/sub/weights.bin && echo m > /opt/ml/model/meta.json"
    " && ln -s /etc/passwd /opt/ml/model/leak && echo o > /opt/ml/output/data/metrics.csv"
)


def _uncompressed(req: dict[str, Any]) -> None:
    req["OutputDataConfig"]["CompressionType"] = "NONE"


def test_compression_none_uploads_the_files_themselves(
    platform: TrainingPlatform, busybox: str, tmp_path: Path
) -> None:
    spec = script_spec(busybox, "uncompressed", WRITE_OUTPUTS, request=_uncompressed)
    result = platform.run(spec, timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    base = f"{spec.output_path}/{spec.name}/output"
    assert result.ModelArtifacts["S3ModelArtifacts"] == f"{base}/model/"
    bucket_base = base.split("/", 3)[3]
    keys = sorted(obj.key for obj in platform.s3.objects(f"{base}/"))
    assert keys == [
        f"{bucket_base}/data/metrics.csv",
        f"{bucket_base}/model/meta.json",
        f"{bucket_base}/model/sub/weights.bin",
    ]  # no model.tar.gz, no output.tar.gz, and the link to a host file was never followed
    assert result.output_data_uri == f"{base}/data/"
    with pytest.raises(FileNotFoundError, match="uncompressed"):
        result.model_tar()
    out = result.extract_model(tmp_path / "model")
    assert (out / "sub" / "weights.bin").read_text() == "w\n"
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "sub"]


def test_gzip_is_still_the_default(platform: TrainingPlatform, busybox: str) -> None:
    spec = script_spec(busybox, "compressed", WRITE_OUTPUTS)
    result = platform.run(spec, timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert result.ModelArtifacts["S3ModelArtifacts"].endswith("/output/model.tar.gz")
    assert result.model_tar()[:2] == b"\x1f\x8b"


# -- host names: gethostname() is the instance's, algo-N resolve through the job's network -----------------

SHOW_NAMES = (
    'echo "HOSTNAME $(hostname)"; '
    'echo "CURRENT $(sed -n \'s/.*"current_host": *"\\([^"]*\\)".*/\\1/p\' /opt/ml/input/config/resourceconfig.json)"; '
    'nslookup algo-1 >/dev/null 2>&1 && echo "NSLOOKUP algo-1 yes" || echo "NSLOOKUP algo-1 no"; '
    'ping -c1 -W2 algo-1 >/dev/null 2>&1 && echo "PING algo-1 yes" || echo "PING algo-1 no"; '
    'ping -c1 -W2 "$(hostname)" >/dev/null 2>&1 && echo "PING self yes" || echo "PING self no"'
)


@pytest.mark.parametrize("isolated", [False, True], ids=["network", "isolated"])
def test_hostname_is_the_instances_and_algo_1_resolves(
    platform: TrainingPlatform, busybox: str, isolated: bool
) -> None:
    spec = script_spec(busybox, "hostname", SHOW_NAMES, network_isolation=isolated)
    result = platform.run(spec, timeout=60)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    [hostname] = tagged(result, "HOSTNAME")
    assert re.fullmatch(r"ip-10-0-\d+-\d+", hostname), hostname
    assert tagged(result, "CURRENT") == ["algo-1"]
    assert tagged(result, "NSLOOKUP") == ["algo-1 yes"]
    assert tagged(result, "PING") == ["algo-1 yes", "self yes"]


RANK_FROM_HOSTNAME = (
    'case "$(hostname)" in algo-*) echo trained > /opt/ml/model/m ;; '
    '*) echo "cannot find my rank: host name $(hostname) is not in hosts" > /opt/ml/output/failure; exit 1 ;; esac'
)


def test_an_image_that_finds_itself_through_gethostname_fails_as_on_aws(
    platform: TrainingPlatform, busybox: str
) -> None:
    result = platform.run(script_spec(busybox, "rank-by-hostname", RANK_FROM_HOSTNAME), timeout=60)
    assert result.TrainingJobStatus == "Failed"
    assert "cannot find my rank: host name ip-10-0-" in (result.FailureReason or "")


# -- credentials: a container credentials endpoint and AWS_REGION, no static keys ---------------------------

BOTO3_SCRIPT = """
import os, boto3
session = boto3.Session()
creds = session.get_credentials()
print("METHOD", creds.method)
print("REGION", os.environ.get("AWS_REGION", "none"), session.region_name)
print("STATIC", os.environ.get("AWS_ACCESS_KEY_ID", "none"), os.environ.get("AWS_DEFAULT_REGION", "none"))
s3 = session.client("s3")
s3.put_object(Bucket="{bucket}", Key="creds/written-by-the-job", Body=b"role credentials work")
print("LISTED", [o["Key"] for o in s3.list_objects_v2(Bucket="{bucket}", Prefix="creds/")["Contents"]])
open("/opt/ml/model/ok", "w").write("ok")
"""


def test_boto3_in_the_container_finds_the_role_credentials_with_no_configuration(
    platform: TrainingPlatform, example_image: Callable[[str], str], tmp_path: Path
) -> None:
    image = example_image("toolkit-script-mode")
    code = tmp_path / "code"
    code.mkdir()
    (code / "creds.py").write_text(BOTO3_SCRIPT.format(bucket=CHANNEL_BUCKET))
    spec = parse_request(
        with_overrides(
            None,
            name=job_name("boto3-creds"),
            image=image,
            entrypoint=["python3", "/opt/ml/input/data/code/creds.py"],
            channel_uris={"code": f"s3://{CHANNEL_BUCKET}/creds-code"},
        )
    )
    result = platform.run(spec, timeout=300, local_channels={"code": code})
    assert result.TrainingJobStatus == "Completed", result.log_tail(40)
    assert tagged(result, "METHOD") == ["container-role"]
    # AWS_REGION is set; boto3 reads only AWS_DEFAULT_REGION, which real jobs lack: no default region (§11).
    assert tagged(result, "REGION") == ["us-east-1 None"]
    assert tagged(result, "STATIC") == ["none none"]
    assert tagged(result, "LISTED") == ["['creds/written-by-the-job']"]
    assert platform.s3.get_bytes(f"s3://{CHANNEL_BUCKET}/creds/written-by-the-job") == b"role credentials work"


# -- disk: File-mode input must fit on the ML storage volume (VolumeSizeInGB) ------------------------------


def _volume_1_gb(req: dict[str, Any]) -> None:
    req["ResourceConfig"]["VolumeSizeInGB"] = 1


def test_input_larger_than_the_volume_fails_before_the_container_starts(
    platform: TrainingPlatform, busybox: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with (data / "big.bin").open("wb") as handle:  # sparse: 1.5 GiB long, no disk used
        handle.truncate(3 * (1 << 29))
    (data / "small.csv").write_text("x\n")
    uri = f"s3://{CHANNEL_BUCKET}/disk-input"
    spec = script_spec(busybox, "disk", "echo started", request=_volume_1_gb, channel_uris={"train": uri})
    result = platform.run(spec, timeout=60, local_channels={"train": data})
    assert result.TrainingJobStatus == "Failed"
    reason = result.FailureReason or ""
    assert reason.startswith("ClientError: Data download failed:Insufficient disk space (")
    assert "VolumeSizeInGB=1" in reason
    assert "started" not in result.logs  # no container ran
    assert "ResourceConfig.VolumeSizeInGB beyond the staged input (writes during training are not capped)" in (
        spec.not_simulated
    )
