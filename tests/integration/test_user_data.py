"""The user's local channel files are read-only to the image on the bind path too (the local engine, root).

A File-mode channel is writable inside the container, as on SageMaker; everything the container does
to it (append, chmod 6777, chown, touch, truncate, delete, add a file) lands in a copy-on-write layer,
never in the user's directory, and no file is copied to get there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_sagemaker_contract.jobs import CHANNEL_BUCKET, job_name, with_overrides
from pytest_sagemaker_contract.platform import TrainingPlatform
from pytest_sagemaker_contract.spec import parse_request

from .conftest_helpers import IMAGES

pytestmark = pytest.mark.local_platform(grace_s=10)


@pytest.fixture(scope="module")
def probe(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "data-path-probe")


def probe_request(probe: str, name: str, mode: str) -> dict[str, object]:
    """A data-path-probe job in `mode` whose `train` channel a local directory stands in for."""
    return with_overrides(
        None,
        name=job_name(name),
        image=probe,
        environment={"MODE": mode},
        channel_uris={"train": f"s3://{CHANNEL_BUCKET}/unused"},
    )


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int, int, int, int]]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        data = path.read_bytes() if path.is_file() else b""
        out[path.relative_to(root).as_posix()] = (data, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ino)
    return out


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_an_attacking_image_leaves_the_users_files_as_they_were(
    platform: TrainingPlatform, probe: str, tmp_path: Path, layout: str
) -> None:
    assert platform.data_path == "bind"
    data = tmp_path / "train"
    (data / "sub").mkdir(parents=True)
    (data / "a.csv").write_text("keep me")
    os.chmod(data / "a.csv", 0o640)
    if layout == "nested":
        (data / "sub" / "b.csv").write_text("me too")
    before = snapshot(data)
    request = probe_request(probe, "attack", "attack")
    result = platform.start(parse_request(request), local_channels={"train": data}).wait(120)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "READ a.csv keep me" in result.logs, "the container reads the user's data"
    assert "SEES OWN WRITE" in result.logs, "the channel is writable inside the container, as on SageMaker"
    assert "ATTACKED" in result.logs
    assert snapshot(data) == before
    assert result.warnings == [] or all("modified" not in w for w in result.warnings)


def test_a_local_channel_directory_is_not_copied(platform: TrainingPlatform, probe: str, tmp_path: Path) -> None:
    """Zero-copy: the job directory holds no copy of a 64 MiB channel file (the overlay reads it in place)."""
    data = tmp_path / "big"
    data.mkdir()
    with open(data / "blob.bin", "wb") as fh:
        fh.truncate(64 * 2**20)
    request = probe_request(probe, "zero-copy", "none")
    job = platform.start(parse_request(request), local_channels={"train": data})
    copies = [
        p
        for p in Path(job.job_dir).rglob("blob.bin")
        if p.is_file() and p.stat().st_ino != (data / "blob.bin").stat().st_ino
    ]
    result = job.wait(120)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert copies == []
    assert [c.files for c in result.hosts[0].channels if c.name == "train"] == [("blob.bin",)]


def test_symlinks_in_a_local_channel_arrive_as_their_targets_bytes(
    platform: TrainingPlatform, probe: str, tmp_path: Path
) -> None:
    """S3 has no links: a local directory standing in for S3 data delivers what its links point at."""
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("linked")
    data = tmp_path / "train"
    data.mkdir()
    (data / "a.csv").symlink_to(elsewhere)
    request = probe_request(probe, "links", "none")
    result = platform.start(parse_request(request), local_channels={"train": data}).wait(120)
    assert result.TrainingJobStatus == "Completed", result.log_tail()
    assert "READ a.csv linked" in result.logs
    assert (data / "a.csv").is_symlink()
