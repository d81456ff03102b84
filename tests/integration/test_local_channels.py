"""Local directories standing in for a channel's S3 data: zero-copy where the semantics allow, S3 otherwise."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingPlatform
from pytest_sagemaker_contract.spec import parse_request

from .conftest_helpers import IMAGES

pytestmark = pytest.mark.local_platform(grace_s=5)


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "cluster-probe")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "nested").mkdir(parents=True)
    (root / "a.csv").write_text("1,2\n")
    (root / "nested" / "b.csv").write_text("3,4\n")
    return root


def channel(uri: str, mode: str, distribution: str = "FullyReplicated") -> list[dict[str, Any]]:
    return [
        {
            "ChannelName": "train",
            "InputMode": mode,
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": distribution}
            },
        }
    ]


def run(platform: TrainingPlatform, image: str, data: Path, mode: str, hosts: int = 1, **kw: Any) -> Any:
    uri = f"s3://{CHANNEL_BUCKET}/local/{job_name(mode)}"
    request = with_overrides(None, name=job_name("local"), image=image, instance_count=hosts, **kw)
    request["InputDataConfig"] = channel(uri, mode, "ShardedByS3Key" if hosts > 1 else "FullyReplicated")
    return platform.run(parse_request(request), timeout=60, local_channels={"train": data}), uri


def test_file_mode_mounts_without_copying_and_nothing_goes_to_s3(
    platform: TrainingPlatform, probe: str, data: Path
) -> None:
    result, uri = run(platform, probe, data, "File")
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "DATA train/a.csv" in result.logs
    assert "DATA train/nested/b.csv" in result.logs
    assert result.hosts[0].channels[0].files == ("a.csv", "nested/b.csv")
    assert list(platform.s3.objects(uri + "/")) == []
    assert os.stat(data / "a.csv").st_nlink == 1  # no hard link ever shares the user's file
    assert result.warnings == []


def test_file_mode_changes_in_the_container_never_reach_the_source(
    platform: TrainingPlatform, probe: str, data: Path
) -> None:
    before = (data / "a.csv").read_bytes()
    script = "echo changed >> /opt/ml/input/data/train/a.csv && grep -q changed /opt/ml/input/data/train/a.csv"
    result, _ = run(platform, probe, data, "File", entrypoint=["/bin/sh", "-c", script])
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert (data / "a.csv").read_bytes() == before
    assert result.warnings == []


def test_fastfile_mounts_the_source_read_only(platform: TrainingPlatform, probe: str, data: Path) -> None:
    script = "ls /opt/ml/input/data/train; touch /opt/ml/input/data/train/new 2>/dev/null && echo WROTE || echo REFUSED"
    result, _ = run(platform, probe, data, "FastFile", entrypoint=["/bin/sh", "-c", script])
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "REFUSED" in result.logs
    assert "a.csv" in result.logs
    assert not (data / "new").exists()


def test_sharded_channels_go_through_s3(platform: TrainingPlatform, probe: str, data: Path) -> None:
    result, uri = run(platform, probe, data, "File", hosts=2)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    keys = sorted(o.key.rsplit("/", 2)[-1] for o in platform.s3.objects(uri + "/"))
    assert keys == ["a.csv", "b.csv"]
    received = [f for h in result.hosts for c in h.channels for f in c.files]
    assert sorted(received) == ["a.csv", "nested/b.csv"]
