"""Artifacts: /opt/ml/model and /opt/ml/output/data of every host, merged, packed and uploaded.

The merge rule (contract §6) is the one place that decides what a multi-host job's model.tar.gz
holds: hosts merge into one archive, the first host wins a name two hosts wrote, and a clash is only
reported when the contents differ (every host of a data-parallel job saving the same weights loses
nothing).
"""

from __future__ import annotations

import filecmp
import os
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .s3 import S3Server

__all__ = ["Merged", "fingerprint", "list_files", "merge_roots", "modified_inputs", "pack_and_upload"]


@dataclass
class Merged:
    """What goes into one archive: (path on disk, name in the archive), in archive order."""

    entries: list[tuple[Path, str]] = field(default_factory=list)
    #: Names two hosts wrote with different contents (the first host's copy is kept).
    clashes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return sorted(name for path, name in self.entries if not path.is_dir())


def list_files(root: Path) -> list[str]:
    """Every regular file under `root`, as sorted POSIX paths relative to it."""
    out: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            out.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(out)


def _walk_entries(root: Path) -> Iterator[tuple[Path, str]]:
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = Path(dirpath, name)
            yield path, path.relative_to(root).as_posix()


def merge_roots(roots: Sequence[Path]) -> Merged:
    """Merge the hosts' directories (host order) into one archive's entries; see the module's rule."""
    merged = Merged()
    seen: dict[str, tuple[int, Path]] = {}
    for i, root in enumerate(roots):
        if not root.is_dir():
            continue
        for path, name in _walk_entries(root):
            if name in seen:
                first_host, first = seen[name]
                if first_host != i and not path.is_dir() and not filecmp.cmp(first, path, shallow=False):
                    merged.clashes.append(name)
                continue
            seen[name] = (i, path)
            merged.entries.append((path, name))
    return merged


def pack_and_upload(
    s3: S3Server,
    roots: Sequence[Path],
    uri: str,
    *,
    always: bool = False,
    metadata: Mapping[str, tuple[int, int, int, str, str]] | None = None,
) -> Merged:
    """Merge `roots` into one tar.gz uploaded to `uri`.

    `always` uploads an archive even when it holds no file, as SageMaker uploads model.tar.gz from an
    empty /opt/ml/model; output.tar.gz is only written when it holds files. `metadata` (path on disk ->
    mode, uid, gid, user, group) is what an entry really was in the container, where the copy on disk
    differs (the engine data path), so the archive holds it as the container wrote it.
    """
    real = metadata or {}

    def as_written(path: Path) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
        def apply(info: tarfile.TarInfo) -> tarfile.TarInfo:
            found = real.get(str(path))
            if found is not None:
                info.mode, info.uid, info.gid, info.uname, info.gname = found
                info.mode &= 0o7777
            return info

        return apply

    merged = merge_roots(roots)
    if not merged.files and not always:
        return merged
    archive = roots[0].parent / f".{Path(uri).name}"
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for path, name in merged.entries:
            tar.add(path, arcname=name, recursive=False, filter=as_written(path))
    s3.upload_file(archive, uri)
    archive.unlink()
    return merged


def fingerprint(path: str) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file, or None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def modified_inputs(before: Mapping[str, tuple[int, int]]) -> list[str]:
    """The files whose fingerprint changed since `before` was taken (sorted)."""
    return sorted(p for p, print_ in before.items() if fingerprint(p) != print_)
