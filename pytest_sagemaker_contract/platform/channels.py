"""Input channels: which S3 objects a host receives and where they land (contract.md §3, §7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..spec import ChannelSpec
from .s3 import S3Object, S3Server, parse_s3_uri, relative_key

__all__ = ["ChannelError", "StagedChannel", "shard", "stage_channel"]


class ChannelError(RuntimeError):
    """Staging failed the way SageMaker fails a job before the container starts (a ClientError)."""


@dataclass(frozen=True)
class StagedChannel:
    name: str
    files: tuple[str, ...]
    bytes: int
    read_only: bool


def shard(objects: Sequence[S3Object], host_index: int, host_count: int) -> list[S3Object]:
    """ShardedByS3Key: objects sorted by key, dealt round-robin; disjoint, complete, deterministic."""
    ordered = sorted(objects, key=lambda o: o.key)
    return [o for i, o in enumerate(ordered) if i % host_count == host_index]


def stage_channel(
    s3: S3Server,
    channel: ChannelSpec,
    dest: Path,
    *,
    host_index: int,
    host_count: int,
    role_arn: str,
    region: str,
) -> StagedChannel:
    """Download what this host receives of `channel` into `dest` (File and FastFile modes)."""
    if channel.s3_data_type != "S3Prefix":
        raise ChannelError(
            f"ClientError: channel {channel.name!r}: S3DataType {channel.s3_data_type} is not simulated yet; "
            "use S3Prefix"
        )
    if channel.input_mode == "Pipe":
        raise ChannelError(
            f"ClientError: channel {channel.name!r}: Pipe input mode is not simulated yet; use File or FastFile"
        )
    bucket, prefix = parse_s3_uri(channel.s3_uri)
    objects = list(s3.objects(channel.s3_uri))
    if not objects:
        raise ChannelError(
            f'ClientError: No S3 objects found under S3 URL "{channel.s3_uri}" given in input data source. '
            f"Please ensure that the bucket exists in the selected region ({region}), that objects exist under "
            f'that S3 prefix, and that the role "{role_arn}" has "s3:ListBucket" permissions on bucket "{bucket}".'
        )
    if channel.distribution == "ShardedByS3Key":
        objects = shard(objects, host_index, host_count)
    pairs = [(o, dest / relative_key(prefix, o.key)) for o in objects]
    dest.mkdir(parents=True, exist_ok=True)
    s3.download_many(pairs)
    return StagedChannel(
        name=channel.name,
        files=tuple(relative_key(prefix, o.key) for o in objects),
        bytes=sum(o.size for o in objects),
        read_only=channel.input_mode == "FastFile",
    )
