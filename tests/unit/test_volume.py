"""File-mode input against the ML storage volume (contract.md §11), as SageMaker words the failure."""

from __future__ import annotations

from pytest_sagemaker_contract.platform.channels import StagedChannel
from pytest_sagemaker_contract.platform.volume import DATA_DOWNLOAD_FAILED, GIB, input_disk_error

MODES = {"train": "File", "stream": "Pipe", "fast": "FastFile"}


def staged(name: str, size: int) -> StagedChannel:
    return StagedChannel(name=name, files=("x",), bytes=size, read_only=False)


def test_input_that_fits_passes_and_no_volume_means_no_check() -> None:
    assert input_disk_error(1, {"algo-1": [staged("train", GIB)]}, MODES) is None
    assert input_disk_error(None, {"algo-1": [staged("train", 100 * GIB)]}, MODES) is None


def test_file_input_above_the_volume_fails_with_sagemakers_words() -> None:
    reason = input_disk_error(1, {"algo-1": [staged("train", GIB // 2)], "algo-2": [staged("train", 3 * GIB)]}, MODES)
    assert reason is not None
    assert reason.startswith(DATA_DOWNLOAD_FAILED + " (")
    assert DATA_DOWNLOAD_FAILED == "ClientError: Data download failed:Insufficient disk space"
    assert "the File-mode input of algo-2, 3.00 GiB: train 3.00 GiB" in reason
    assert "ResourceConfig.VolumeSizeInGB=1; increase VolumeSizeInGB" in reason


def test_streamed_channels_take_no_room_on_the_volume() -> None:
    hosts = {"algo-1": [staged("stream", 5 * GIB), staged("fast", 5 * GIB), staged("train", GIB // 4)]}
    assert input_disk_error(1, hosts, MODES) is None
