"""The S3 relay (platform/s3_relay.py) on the local engine, forced: the way containers on an engine that
cannot reach this process get S3. A real boto3 (the toolkit example's) signs for the relay's address,
puts, lists and gets through it; the SigV4 gate in front of moto checks every request on the way."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name, with_overrides
from pytest_sagemaker_contract.platform import Engine, S3Server, TrainingPlatform
from pytest_sagemaker_contract.platform.engine import LABEL_RUN
from pytest_sagemaker_contract.spec import parse_request

SCRIPT = textwrap.dedent(
    """
    import json, os, boto3
    host = json.load(open("/opt/ml/input/config/resourceconfig.json"))["current_host"]  # not gethostname()
    prefix = f"relay/{{host}}/"  # each host its own keys
    s3 = boto3.client("s3")  # AWS_ENDPOINT_URL_S3 and the session's keys come from the platform
    print("endpoint", os.environ["AWS_ENDPOINT_URL_S3"])
    body = os.urandom(5 << 20)
    for i in range(3):
        s3.put_object(Bucket="{bucket}", Key=f"{{prefix}}part-{{i}}", Body=body[i:])
    keys = [o["Key"][len(prefix):] for o in s3.list_objects_v2(Bucket="{bucket}", Prefix=prefix)["Contents"]]
    print("listed", keys)
    got = s3.get_object(Bucket="{bucket}", Key=f"{{prefix}}part-2")["Body"].read()
    assert got == body[2:], "read back differs"
    try:
        boto3.client("s3", aws_access_key_id="AKIAWRONG", aws_secret_access_key="x").list_buckets()
        print("UNSIGNED ACCEPTED")
    except Exception as exc:
        print("wrong key refused:", type(exc).__name__, getattr(exc, "response", {{}}).get("Error", {{}}).get("Code"))
    open("/opt/ml/model/ok", "w").write("ok")
    """
).format(bucket=CHANNEL_BUCKET)


@pytest.fixture(scope="module")
def relay_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingPlatform]:
    s3 = S3Server().start()  # on 127.0.0.1: only the relay takes containers there
    s3.ensure_bucket(CHANNEL_BUCKET)
    platform = TrainingPlatform(
        Engine(docker.from_env(timeout=300)), s3, tmp_path_factory.mktemp("relay"), relay_s3=True
    )
    try:
        yield platform
    finally:
        platform.close()
        s3.stop()
        left = platform.engine.api.containers(all=True, filters={"label": f"{LABEL_RUN}={platform.run_id}"})
        assert left == [], "relay or job containers left behind"


@pytest.mark.parametrize("hosts", [1, 2])
def test_boto3_in_the_container_round_trips_through_the_relay(
    relay_platform: TrainingPlatform, example_image: Callable[[str], str], hosts: int, tmp_path: Path
) -> None:
    image = example_image("toolkit-script-mode")
    code = tmp_path / "code"
    code.mkdir()
    (code / "relay.py").write_text(SCRIPT)
    spec = parse_request(
        with_overrides(
            None,
            name=job_name(f"relay-{hosts}"),
            image=image,
            entrypoint=["python3", "/opt/ml/input/data/code/relay.py"],
            instance_count=hosts,
            channel_uris={"code": f"s3://{CHANNEL_BUCKET}/code-{hosts}"},
        )
    )
    result = relay_platform.run(spec, timeout=300, local_channels={"code": code})
    assert result.TrainingJobStatus == "Completed", result.log_tail(40)
    assert "endpoint http://" in result.logs
    assert result.logs.count("listed ['part-0', 'part-1', 'part-2']") == hosts
    assert "wrong key refused: " in result.logs
    assert "AccessDenied" in result.logs.split("wrong key refused: ")[1]
    assert "UNSIGNED ACCEPTED" not in result.logs
    for host in range(1, hosts + 1):
        listed = relay_platform.s3.client().list_objects_v2(Bucket=CHANNEL_BUCKET, Prefix=f"relay/algo-{host}/")
        assert sorted(o["Size"] for o in listed["Contents"]) == [(5 << 20) - 2, (5 << 20) - 1, 5 << 20]
