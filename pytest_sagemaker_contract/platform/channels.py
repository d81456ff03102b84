"""Input channels: which S3 objects a host receives and where they land (contract.md §3, §7)."""

from __future__ import annotations

import json
import posixpath
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import PlatformError
from ..spec import ChannelSpec
from .s3 import S3Object, S3Server, parse_s3_uri, relative_key
from .untrusted import UnsafeName, collapse, safe_join

__all__ = [
    "ChannelError",
    "ChannelItem",
    "ChannelPart",
    "StagedChannel",
    "describe_local",
    "local_staging_allowed",
    "parse_augmented_line",
    "parse_manifest",
    "resolve_channel",
    "shard",
    "shard_items",
    "source_fingerprint",
    "stage_channel",
    "stage_local",
]

T = TypeVar("T")
#: What one item of a channel delivers: an S3 object, a local file holding its bytes, or inline bytes.
ChannelPart = S3Object | Path | bytes


class ChannelError(PlatformError, RuntimeError):
    """Staging failed the way SageMaker fails a job before the container starts (a ClientError)."""


@dataclass(frozen=True)
class StagedChannel:
    name: str
    files: tuple[str, ...]
    bytes: int
    read_only: bool


@dataclass(frozen=True)
class ChannelItem:
    """The unit a channel is sharded and shuffled by, in delivery order.

    S3Prefix and ManifestFile: one object and the relative path it is staged at. AugmentedManifestFile:
    one manifest line, as the values of its AttributeNames in order (each its own RecordIO record in Pipe
    mode), so that a line's image and label always travel together.
    """

    parts: tuple[ChannelPart, ...]
    path: str = ""

    @property
    def object(self) -> S3Object:
        """The single S3 object of an S3Prefix or ManifestFile item."""
        part = self.parts[0]
        if len(self.parts) != 1 or not isinstance(part, S3Object):
            raise TypeError(f"channel item {self.path or self.parts!r} is not a single S3 object")
        return part


def shard(objects: Sequence[S3Object], host_index: int, host_count: int) -> list[S3Object]:
    """ShardedByS3Key: objects sorted by key, dealt round-robin; disjoint, complete, deterministic."""
    ordered = sorted(objects, key=lambda o: o.key)
    return [o for i, o in enumerate(ordered) if i % host_count == host_index]


def shard_items(items: Sequence[T], host_index: int, host_count: int) -> list[T]:
    """ShardedByS3Key over items already in delivery order: dealt round-robin, as `shard` does."""
    return list(items[host_index::host_count])


def _client_error(channel: str, text: str) -> ChannelError:
    return ChannelError(f"ClientError: channel {channel!r}: {text}")


def parse_manifest(text: str | bytes, uri: str, channel: str = "") -> tuple[str, list[str]]:
    """A ManifestFile, `[{"prefix": "s3://b/p/"}, "rel1", ...]` -> (prefix URI, relative names).

    Objects are `prefix + rel` (plain concatenation, so one bucket) and are staged at `rel`; a name that
    would land outside the channel directory is refused rather than written there.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _client_error(channel, f"manifest file {uri} is not valid JSON ({exc})") from None
    shape = 'must be a JSON array whose first element is {"prefix": "s3://bucket/prefix/"}'
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "prefix" not in data[0]:
        raise _client_error(channel, f"manifest file {uri} {shape}")
    prefix = data[0]["prefix"]
    if not isinstance(prefix, str) or not prefix.startswith("s3://") or not prefix[len("s3://") :].split("/")[0]:
        raise _client_error(channel, f"manifest file {uri}: prefix {prefix!r} is not an s3://bucket/... URI")
    names: list[str] = []
    for i, rel in enumerate(data[1:], start=1):
        if not isinstance(rel, str) or not rel:
            raise _client_error(channel, f"manifest file {uri}: entry {i} is {json.dumps(rel)}, not a relative key")
        if rel.startswith("/") or ".." in posixpath.normpath(rel).split("/"):
            raise _client_error(channel, f"manifest file {uri}: entry {i} {rel!r} leaves the channel directory")
        names.append(rel)
    if not names:
        raise _client_error(channel, f"manifest file {uri} lists no objects after its prefix")
    return prefix, names


def parse_augmented_line(
    line: str, lineno: int, attribute_names: Sequence[str], uri: str, channel: str = ""
) -> tuple[str | bytes, ...]:
    """One AugmentedManifestFile line -> its AttributeNames' values, in AttributeNames order.

    The rule is SageMaker's documented one: an attribute whose name ends in `-ref` holds an s3:// URI
    and delivers that object's bytes (returned here as the URI, a str); any other value is delivered as
    its text: a string as itself (UTF-8), anything else as compact JSON (`1`, `[0, 1]`).
    """
    where = f"augmented manifest {uri} line {lineno}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _client_error(channel, f"{where} is not valid JSON ({exc})") from None
    if not isinstance(row, dict):
        raise _client_error(channel, f"{where} is not a JSON object")
    values: list[str | bytes] = []
    for name in attribute_names:
        if name not in row:
            raise _client_error(channel, f"{where} has no attribute {name!r} (AttributeNames)")
        value = row[name]
        if name.endswith("-ref"):
            if not isinstance(value, str) or not value.startswith("s3://"):
                raise _client_error(channel, f"{where}: {name!r} is {json.dumps(value)}, not an s3:// URI")
            values.append(value)
        elif isinstance(value, str):
            values.append(value.encode())
        else:
            values.append(json.dumps(value, separators=(",", ":")).encode())
    return tuple(values)


def _read_manifest(s3: S3Server, channel: ChannelSpec, kind: str) -> bytes:
    if s3.head(channel.s3_uri) is None:
        raise _client_error(channel.name, f"{kind} {channel.s3_uri} given in input data source does not exist")
    return s3.get_bytes(channel.s3_uri)


def _heads(s3: S3Server, uris: Sequence[str], channel: ChannelSpec, kind: str) -> dict[str, S3Object]:
    """Every referenced object, checked before the container starts (SageMaker fails the job on a missing one)."""
    unique = list(dict.fromkeys(uris))
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(unique)))) as pool:
        found = dict(zip(unique, pool.map(s3.head, unique), strict=True))
    missing = [u for u, o in found.items() if o is None]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise _client_error(channel.name, f"{kind} {channel.s3_uri} refers to {missing[0]}{more}, which does not exist")
    return {u: o for u, o in found.items() if o is not None}


def resolve_channel(
    s3: S3Server,
    channel: ChannelSpec,
    *,
    role_arn: str,
    region: str,
    attribute_names: Sequence[str] = (),
) -> list[ChannelItem]:
    """Every item of `channel`, for any S3DataType, in delivery order, before sharding.

    S3Prefix: the objects under the prefix in key order. ManifestFile: the listed objects in manifest
    order. AugmentedManifestFile: one item per non-blank line, in line order (AttributeNames comes from
    the request's S3DataSource; ChannelSpec does not carry it). Problems raise ChannelError.
    """
    if channel.s3_data_type == "ManifestFile":
        prefix, names = parse_manifest(_read_manifest(s3, channel, "manifest file"), channel.s3_uri, channel.name)
        listed = _heads(s3, [prefix + n for n in names], channel, "manifest file")
        return [ChannelItem((listed[prefix + n],), n) for n in names]
    if channel.s3_data_type == "AugmentedManifestFile":
        if not attribute_names:
            raise _client_error(channel.name, "AugmentedManifestFile needs S3DataSource.AttributeNames")
        text = _read_manifest(s3, channel, "augmented manifest").decode("utf-8", "replace")
        rows = [
            parse_augmented_line(line, n, attribute_names, channel.s3_uri, channel.name)
            for n, line in enumerate(text.splitlines(), start=1)
            if line.strip()
        ]
        if not rows:
            raise _client_error(channel.name, f"augmented manifest {channel.s3_uri} has no lines")
        refs = _heads(s3, [v for row in rows for v in row if isinstance(v, str)], channel, "augmented manifest")
        return [ChannelItem(tuple(refs[v] if isinstance(v, str) else v for v in row)) for row in rows]
    if channel.s3_data_type != "S3Prefix":
        raise _client_error(channel.name, f"S3DataType {channel.s3_data_type} is not simulated")
    bucket, prefix = parse_s3_uri(channel.s3_uri)
    objects = sorted(s3.objects(channel.s3_uri), key=lambda o: o.key)
    if not objects:
        raise ChannelError(
            f'ClientError: No S3 objects found under S3 URL "{channel.s3_uri}" given in input data source. '
            f"Please ensure that the bucket exists in the selected region ({region}), that objects exist under "
            f'that S3 prefix, and that the role "{role_arn}" has "s3:ListBucket" permissions on bucket "{bucket}".'
        )
    return [ChannelItem((o,), relative_key(prefix, o.key)) for o in objects]


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
    if channel.input_mode == "Pipe":
        raise ChannelError(f"channel {channel.name!r} is in Pipe mode: feed it with pipes.pipe_feeder, not staging")
    if channel.s3_data_type == "AugmentedManifestFile":
        raise _client_error(
            channel.name, f"AugmentedManifestFile is supported only in Pipe input mode (got {channel.input_mode})"
        )
    items = resolve_channel(s3, channel, role_arn=role_arn, region=region)
    if channel.distribution == "ShardedByS3Key":
        items = shard_items(items, host_index, host_count)
    try:
        pairs = [(item.object, safe_join(dest, collapse(item.path))) for item in items]
    except UnsafeName as exc:
        raise _client_error(channel.name, f"S3 object name {exc} below {channel.s3_uri}: not staged") from None
    dest.mkdir(parents=True, exist_ok=True)
    s3.download_many(pairs)
    return StagedChannel(
        name=channel.name,
        files=tuple(item.path for item in items),
        bytes=sum(item.object.size for item in items),
        read_only=channel.input_mode == "FastFile",
    )


def local_staging_allowed(channel: ChannelSpec) -> bool:
    """Whether a local directory can stand in for the channel's S3 prefix without changing what the container sees.

    True for FullyReplicated S3Prefix channels in File or FastFile mode: every host gets every file at
    its path relative to the prefix, exactly the local tree. Sharding, manifests and Pipe mode depend
    on S3 keys and streaming, so those go through the platform's S3.
    """
    return (
        channel.s3_data_type == "S3Prefix"
        and channel.distribution == "FullyReplicated"
        and channel.input_mode in ("File", "FastFile")
    )


def source_fingerprint(source: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under `source`, to notice a local channel changing while a job runs."""
    files = [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
    out: dict[str, tuple[int, int]] = {}
    for path in files:
        st = path.stat()
        out[str(path)] = (st.st_size, st.st_mtime_ns)
    return out


def _local_pairs(source: Path, dest: Path) -> list[tuple[Path, Path]]:
    pairs = [(source, dest / source.name)] if source.is_file() else []
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                pairs.append((path, dest / path.relative_to(source)))
    return pairs


def describe_local(channel: ChannelSpec, source: Path) -> StagedChannel:
    """What a local directory mounted as the channel (a copy-on-write overlay) delivers; nothing is copied."""
    pairs = _local_pairs(source, Path("."))
    files = tuple(target.as_posix() for _src, target in pairs)
    return StagedChannel(
        name=channel.name, files=files, bytes=sum(src.stat().st_size for src, _t in pairs), read_only=False
    )


def stage_local(channel: ChannelSpec, source: Path, dest: Path) -> StagedChannel:
    """Stage a local file or directory as a File-mode channel by copying it.

    Never hard links: a container that chmods, chowns or rewrites a linked file would change the user's
    own file. Where the engine can, a local directory is not staged at all but mounted as a
    copy-on-write overlay (`data_path.overlay_mount`); FastFile channels are bind-mounted read-only
    (see HostLayout.binds).
    """
    dest.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    total = 0
    for src, target in _local_pairs(source, dest):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        files.append(target.relative_to(dest).as_posix())
        total += src.stat().st_size
    return StagedChannel(name=channel.name, files=tuple(files), bytes=total, read_only=False)
