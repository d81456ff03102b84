"""The ML storage volume (ResourceConfig.VolumeSizeInGB) that /opt/ml lives on (contract.md §11).

On SageMaker, File-mode input is downloaded onto that volume before the container starts; when it does
not fit, the job fails with `ClientError: Data download failed:Insufficient disk space` (and an upload
that does not fit with `ClientError: Artifact upload failed:Insufficient disk space`). FastFile and Pipe
channels stream and take no room there. The local platform checks the staged File-mode input of each host
against the volume; what the container writes while it trains is not capped here (Docker's
`--storage-opt size` needs overlay2 on xfs with pquota; a bind-mounted host directory has no size).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .channels import StagedChannel

__all__ = ["DATA_DOWNLOAD_FAILED", "GIB", "input_disk_error"]

GIB = 1 << 30
#: SageMaker's FailureReason when a job's input does not fit on its volume (aws/sagemaker-python-sdk#128).
DATA_DOWNLOAD_FAILED = "ClientError: Data download failed:Insufficient disk space"


def _size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB // 100 else f"{n} bytes"


def input_disk_error(
    volume_gb: int | None, hosts: Mapping[str, Sequence[StagedChannel]], modes: Mapping[str, str]
) -> str | None:
    """The FailureReason when some host's File-mode input exceeds the volume, else None.

    `hosts`: host name -> what was staged for it; `modes`: channel name -> its input mode (only File
    channels are downloaded onto the volume)."""
    if volume_gb is None:
        return None
    limit = volume_gb * GIB
    for host, channels in hosts.items():
        staged = [c for c in channels if modes.get(c.name) == "File"]
        total = sum(c.bytes for c in staged)
        if total > limit:
            parts = ", ".join(f"{c.name} {_size(c.bytes)}" for c in staged)
            return (
                f"{DATA_DOWNLOAD_FAILED} (the File-mode input of {host}, {_size(total)}: {parts}, does not fit on "
                f"the ML storage volume of ResourceConfig.VolumeSizeInGB={volume_gb}; increase VolumeSizeInGB, "
                "shard the channel (ShardedByS3Key) or stream it (FastFile or Pipe mode))"
            )
    return None
