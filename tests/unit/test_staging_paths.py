"""Staging reads the same bytes whether they come straight from moto's store or through HTTP (real moto)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_sagemaker_contract.platform import S3Server
from pytest_sagemaker_contract.platform.channels import stage_channel
from pytest_sagemaker_contract.spec import ChannelSpec


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server().start()
    yield server
    server.stop()


@pytest.mark.parametrize("direct", [True, False], ids=["moto-store", "http"])
def test_both_paths_stage_identical_bytes(s3: S3Server, tmp_path: Path, direct: bool) -> None:
    s3.ensure_bucket("paths")
    objects = {"small.bin": os.urandom(10_000), "big/large.bin": os.urandom(9 * 1024 * 1024)}
    for key, body in objects.items():
        s3.client().put_object(Bucket="paths", Key=f"data/{key}", Body=body)
    s3.direct_reads = direct
    try:
        staged = stage_channel(
            s3, ChannelSpec("train", "s3://paths/data"), tmp_path, host_index=0, host_count=1, role_arn="r", region="x"
        )
    finally:
        s3.direct_reads = True
    assert sorted(staged.files) == ["big/large.bin", "small.bin"]
    for key, body in objects.items():
        assert (tmp_path / key).read_bytes() == body
