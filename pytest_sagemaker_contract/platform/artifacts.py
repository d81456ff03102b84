"""Artifacts: /opt/ml/model and /opt/ml/output/data of every host, merged, packed and uploaded.

The merge rule (contract §6) is the one place that decides what a multi-host job's model.tar.gz
holds: hosts merge into one archive, the first host wins a name two hosts wrote, and a clash is only
reported when the contents differ (every host of a data-parallel job saving the same weights loses
nothing).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import untrusted
from .s3 import S3Server
from .untrusted import DIR, FILE, LINK, Entry

__all__ = [
    "Merged",
    "fingerprint",
    "list_files",
    "merge_roots",
    "modified_inputs",
    "pack_and_upload",
    "upload_tree",
    "write_archive",
]


@dataclass
class Merged:
    """What goes into one archive: (path on disk, name in the archive), in archive order."""

    entries: list[tuple[Path, str]] = field(default_factory=list)
    #: Names two hosts wrote with different contents (the first host's copy is kept).
    clashes: list[str] = field(default_factory=list)
    #: Each entry's host root and what `lstat` saw, by name in the archive.
    found: dict[str, tuple[Path, Entry]] = field(default_factory=dict)

    @property
    def files(self) -> list[str]:
        """The regular files: what the archive holds bytes of (a link is no model file)."""
        return sorted(name for name, (_root, entry) in self.found.items() if entry.kind == FILE)

    @property
    def links(self) -> list[str]:
        """The symbolic links, as `name -> target` (kept as links in the archive, never followed)."""
        return sorted(f"{name} -> {entry.target}" for name, (_root, entry) in self.found.items() if entry.kind == LINK)


def list_files(root: Path) -> list[str]:
    """Every regular file under `root`, as sorted POSIX paths relative to it (links are not followed)."""
    return sorted(entry.name for entry in untrusted.walk(root) if entry.kind == FILE)


def _same_bytes(a: tuple[Path, Entry], b: tuple[Path, Entry]) -> bool:
    if a[1].size != b[1].size:
        return False
    try:
        with untrusted.open_file(a[0], a[1].name) as fa, untrusted.open_file(b[0], b[1].name) as fb:
            while True:
                chunk = fa.read(1 << 20)
                if chunk != fb.read(1 << 20):
                    return False
                if not chunk:
                    return True
    except OSError:
        return False


def _same(a: tuple[Path, Entry], b: tuple[Path, Entry]) -> bool:
    if a[1].kind != b[1].kind:
        return False
    if a[1].kind == LINK:
        return a[1].target == b[1].target
    return a[1].kind != FILE or _same_bytes(a, b)


def merge_roots(roots: Sequence[Path]) -> Merged:
    """Merge the hosts' directories (host order) into one archive's entries; see the module's rule.

    Walked without following links (`untrusted.walk`): a link is an entry of its own; FIFOs, sockets and
    device nodes are left out."""
    merged = Merged()
    host_of: dict[str, int] = {}
    for i, root in enumerate(roots):
        for entry in untrusted.walk(root):
            if entry.kind not in (FILE, DIR, LINK):
                continue
            name = entry.name
            if name in merged.found:
                if host_of[name] != i and entry.kind != DIR and not _same(merged.found[name], (root, entry)):
                    merged.clashes.append(name)
                continue
            host_of[name] = i
            merged.found[name] = (root, entry)
            merged.entries.append((root / name, name))
    return merged


def _tarinfo(name: str, entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = entry.mode & 0o7777
    info.uid, info.gid = entry.uid, entry.gid
    info.mtime = entry.mtime_ns // 1_000_000_000
    with contextlib.suppress(KeyError, OverflowError):
        info.uname = pwd.getpwuid(entry.uid).pw_name
    with contextlib.suppress(KeyError, OverflowError):
        info.gname = grp.getgrgid(entry.gid).gr_name
    if entry.kind == DIR:
        info.type = tarfile.DIRTYPE
    elif entry.kind == LINK:
        info.type, info.linkname = tarfile.SYMTYPE, entry.target or ""
    return info


def write_archive(
    tar: tarfile.TarFile, merged: Merged, metadata: Mapping[str, tuple[int, int, int, str, str]] | None = None
) -> None:
    """The merged entries into `tar`: links as symlink members (as `tar` of the directory on SageMaker writes
    them), a file's bytes read through `untrusted.open_file`, so nothing outside the roots gets in."""
    real = metadata or {}
    for path, name in merged.entries:
        root, entry = merged.found[name]
        info = _tarinfo(name, entry)
        found = real.get(str(path))
        if found is not None:
            info.mode, info.uid, info.gid, info.uname, info.gname = found
            info.mode &= 0o7777
        if entry.kind != FILE:
            tar.addfile(info)
            continue
        try:
            with untrusted.open_file(root, name) as fh:
                info.size = os.fstat(fh.fileno()).st_size
                tar.addfile(info, fh)
        except OSError:  # gone or swapped for something else since the walk: left out
            continue


def pack_and_upload(
    s3: S3Server,
    roots: Sequence[Path],
    uri: str,
    *,
    always: bool = False,
    metadata: Mapping[str, tuple[int, int, int, str, str]] | None = None,
    compressed: bool = True,
) -> Merged:
    """Merge `roots` into one tar.gz uploaded to `uri`, or with `compressed` False (OutputDataConfig
    CompressionType NONE) upload each merged file as an object of its own under the prefix `uri`.

    `always` uploads an archive even when it holds no file, as SageMaker uploads model.tar.gz from an
    empty /opt/ml/model; output.tar.gz is only written when it holds files. `metadata` (path on disk ->
    mode, uid, gid, user, group) is what an entry really was in the container, where the copy on disk
    differs (the engine data path), so the archive holds it as the container wrote it. Links stay links
    (`write_archive`).
    """
    merged = merge_roots(roots)
    if not compressed:
        upload_tree(s3, merged, uri)
        return merged
    if not merged.files and not always:
        return merged
    archive = roots[0].parent / f".{Path(uri).name}"
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        write_archive(tar, merged, metadata)
    s3.upload_file(archive, uri)
    archive.unlink()
    return merged


def upload_tree(s3: S3Server, merged: Merged, prefix: str) -> int:
    """Each merged regular file to `<prefix>/<name>`, as SageMaker uploads an uncompressed model; the number
    uploaded. S3 holds no links or empty directories: those are left out (`merged.links` names the links).
    Every file is read through `untrusted.open_file` and uploaded from that open descriptor, so no link
    the image made is followed."""
    count = 0
    for _path, name in merged.entries:
        root, entry = merged.found[name]
        if entry.kind != FILE:
            continue
        try:
            with untrusted.open_file(root, name) as fh:
                s3.upload_file(Path(f"/proc/self/fd/{fh.fileno()}"), f"{prefix.rstrip('/')}/{name}")
        except OSError:  # gone or swapped for something else since the walk: left out
            continue
        count += 1
    return count


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
