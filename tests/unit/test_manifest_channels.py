"""Manifest channels (ManifestFile) staged from a real moto S3: what File mode stages, what a bad manifest does.

No container runs: staging and the Pipe feeder's set-up happen on the host before any container starts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_sagemaker_contract.platform import S3Server
from pytest_sagemaker_contract.platform.channels import ChannelError, stage_channel
from pytest_sagemaker_contract.spec import DEFAULT_ROLE_ARN, ChannelSpec

from .pipe_helpers import feeder_for, host

BUCKET = "pipe-mode-tests"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server().start()
    server.ensure_bucket(BUCKET)
    yield server
    server.stop()


def seed(s3: S3Server, objects: dict[str, bytes]) -> str:
    """Put `objects` under a fresh prefix; return its URI."""
    prefix = f"p{uuid.uuid4().hex[:8]}"
    for key, body in objects.items():
        s3.client().put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=body)
    return f"s3://{BUCKET}/{prefix}"


def test_manifest_file_in_file_mode_stages_relative_names(s3: S3Server, tmp_path: Path) -> None:
    data = seed(s3, {"one.csv": b"1\n", "sub/two.csv": b"2\n", "unlisted.csv": b"no\n"})
    manifest = seed(s3, {"m.json": json.dumps([{"prefix": f"{data}/"}, "one.csv", "sub/two.csv"]).encode()})
    channel = ChannelSpec("train", f"{manifest}/m.json", s3_data_type="ManifestFile")
    dest = tmp_path / "train"
    staged = stage_channel(s3, channel, dest, host_index=0, host_count=1, role_arn=DEFAULT_ROLE_ARN, region="us-east-1")
    assert staged.files == ("one.csv", "sub/two.csv")
    assert staged.bytes == 4
    assert (dest / "one.csv").read_bytes() == b"1\n"
    assert (dest / "sub/two.csv").read_bytes() == b"2\n"
    assert not (dest / "unlisted.csv").exists()

    sharded = ChannelSpec("train", f"{manifest}/m.json", s3_data_type="ManifestFile", distribution="ShardedByS3Key")
    shares = [
        stage_channel(
            s3, sharded, tmp_path / f"h{i}", host_index=i, host_count=2, role_arn=DEFAULT_ROLE_ARN, region="us-east-1"
        ).files
        for i in range(2)
    ]
    assert shares == [("one.csv",), ("sub/two.csv",)]


def test_manifest_naming_a_missing_object_fails_before_the_container(s3: S3Server, tmp_path: Path) -> None:
    data = seed(s3, {"one.csv": b"1\n"})
    manifest = seed(s3, {"m.json": json.dumps([{"prefix": f"{data}/"}, "one.csv", "gone.csv"]).encode()})
    channel = ChannelSpec("train", f"{manifest}/m.json", s3_data_type="ManifestFile", input_mode="Pipe")
    with pytest.raises(ChannelError, match=r"^ClientError: channel 'train': manifest file .* refers to .*/gone\.csv"):
        feeder_for(s3, host(tmp_path), channel)
    missing = ChannelSpec("train", f"{manifest}/nothing.json", s3_data_type="ManifestFile")
    with pytest.raises(ChannelError, match="does not exist"):
        stage_channel(s3, missing, tmp_path / "x", host_index=0, host_count=1, role_arn="r", region="us-east-1")
