"""The one door for untrusted bytes (design.md): names the image or S3 chose, files the image wrote.

Everything the image wrote (model, output, failure file, checkpoints) and every S3 key or archive member
name is untrusted. The image runs as root in its container and shares the job's directories with this
process (bind mounts), or hands them back through the engine's archives; it also holds the session's S3
keys. So, here and only here:

- a name is joined onto a host path only through `safe_join`: no `..`, no leading `/`, no empty or `.`
  segment, no NUL (`UnsafeName` says which);
- a tree is walked with `walk` (directory descriptors, `lstat`): a link is reported as a link, never
  followed, the root included;
- a file is opened with `open_file`: every component without following links, the last one by an
  `O_PATH` descriptor checked to be a regular file before it is reopened for reading, so a link, FIFO
  or device node the image put there (or swapped in while we looked) is never opened on the host.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "DIR",
    "FILE",
    "LINK",
    "OTHER",
    "Entry",
    "LinkRefused",
    "NotRegularFile",
    "UnsafeName",
    "collapse",
    "open_file",
    "read_text",
    "resolve_inside",
    "safe_join",
    "safe_relative",
    "walk",
]

FILE = "file"
DIR = "dir"
LINK = "link"
OTHER = "other"
#: Link hops `resolve_inside` follows before it gives up (the kernel's own limit).
_MAX_HOPS = 40
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class UnsafeName(ValueError):
    """A key or member name that does not name a path inside its root; the message says why."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name!r} {why}")
        self.name = name
        self.why = why


class NotRegularFile(OSError):
    """What was asked for is not a regular file (a directory, FIFO, socket or device node)."""


class LinkRefused(OSError):
    """A symbolic link the image made, met where a file or directory was expected; never followed."""

    def __init__(self, name: str, target: str | None) -> None:
        super().__init__(f"{name} is a symbolic link" + (f" (to {target})" if target is not None else ""))
        self.name = name
        self.target = target


def safe_relative(name: str) -> str:
    """`name` when it is a relative POSIX path that stays inside any root it is joined onto; else UnsafeName."""
    if not name:
        raise UnsafeName(name, "is empty")
    if "\x00" in name:
        raise UnsafeName(name, "holds a NUL byte")
    if name.startswith("/"):
        raise UnsafeName(name, "is absolute (starts with '/')")
    parts = name.split("/")
    if ".." in parts:
        raise UnsafeName(name, "has a '..' segment (it would leave the directory it is written into)")
    if "" in parts:
        raise UnsafeName(name, "has an empty segment ('//' or a trailing '/')")
    if "." in parts:
        raise UnsafeName(name, "has a '.' segment")
    return name


def collapse(name: str) -> str:
    """`name` with empty and `.` segments dropped (`a//./b` -> `a/b`, `/x` -> `x`); `..` is kept, for
    `safe_relative` to refuse. For S3 keys below a channel prefix, which S3 lets hold `//`."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def safe_join(root: Path, name: str) -> Path:
    """`root / name` for a name `safe_relative` accepts (UnsafeName otherwise); links are `open_file`'s concern."""
    joined = root / safe_relative(name)
    base = os.path.normpath(root)
    if os.path.commonpath([base, os.path.normpath(joined)]) != base:  # unreachable after the checks: kept as a stop
        raise UnsafeName(name, f"resolves outside {root}")
    return joined


@dataclass(frozen=True)
class Entry:
    """One entry below a walked root, as `lstat` saw it."""

    #: POSIX path relative to the root.
    name: str
    kind: str
    mode: int
    size: int
    mtime_ns: int
    uid: int
    gid: int
    #: A link's target, as the image wrote it (never resolved).
    target: str | None = None


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return LINK
    return OTHER


def walk(root: Path) -> Iterator[Entry]:
    """Every entry below `root`, a directory before what it holds, names sorted; links reported, never followed.

    A root that is missing, not a directory or itself a link yields nothing (`os.fwalk` opens each
    directory relative to its parent's descriptor and checks it is the one it listed)."""
    try:
        if not stat.S_ISDIR(os.lstat(root).st_mode):
            return
    except OSError:
        return
    for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        dirnames.sort()
        prefix = os.path.relpath(dirpath, root)
        prefix = "" if prefix == "." else prefix + "/"
        for name in sorted(dirnames + filenames):
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                kind = _kind(st.st_mode)
                target = os.readlink(name, dir_fd=dirfd) if kind == LINK else None
            except OSError:  # gone since it was listed
                continue
            yield Entry(prefix + name, kind, st.st_mode, st.st_size, st.st_mtime_ns, st.st_uid, st.st_gid, target)


def _open_parent(root: Path, parts: list[str]) -> int:
    """A descriptor of `root/parts...`, each component opened without following a link."""
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
    try:
        for i, part in enumerate(parts):
            try:
                nxt = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            except OSError as exc:
                _raise_if_link(fd, part, "/".join(parts[: i + 1]), exc)
                raise
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _raise_if_link(dirfd: int, part: str, name: str, exc: OSError) -> None:
    target = None
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(os.stat(part, dir_fd=dirfd, follow_symlinks=False).st_mode):
            target = os.readlink(part, dir_fd=dirfd)
    if target is not None:
        raise LinkRefused(name, target) from exc


def open_file(root: Path, name: str) -> BinaryIO:
    """The regular file `root/name` opened for reading, no link followed on the way.

    LinkRefused when a component is a link, NotRegularFile when the last one is not a regular file,
    FileNotFoundError when it is missing, UnsafeName for a name that would leave `root`."""
    *parents, last = safe_relative(name).split("/")
    dirfd = _open_parent(root, parents)
    try:
        if hasattr(os, "O_PATH"):
            pfd = os.open(last, os.O_PATH | _NOFOLLOW | _CLOEXEC, dir_fd=dirfd)
            try:
                mode = os.fstat(pfd).st_mode
                if stat.S_ISLNK(mode):
                    raise LinkRefused(name, os.readlink(last, dir_fd=dirfd))
                if not stat.S_ISREG(mode):
                    raise NotRegularFile(f"{name} is not a regular file")
                fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | _CLOEXEC)  # the same inode, reopened
            finally:
                os.close(pfd)
        else:  # pragma: no cover - non-Linux: no O_PATH
            try:
                fd = os.open(last, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC, dir_fd=dirfd)
            except OSError as exc:
                _raise_if_link(dirfd, last, name, exc)
                raise
    finally:
        os.close(dirfd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(f"{name} is not a regular file")
    return os.fdopen(fd, "rb")


def read_text(root: Path, name: str, limit: int) -> str | None:
    """The first `limit` characters of the regular file `root/name` (undecodable bytes replaced).

    None when it is missing or not a regular file; LinkRefused when it is a link (never followed)."""
    try:
        with open_file(root, name) as fh:
            data = fh.read(limit * 4)
    except (FileNotFoundError, NotADirectoryError, NotRegularFile, PermissionError, UnsafeName):
        return None
    return data.decode("utf-8", "replace")[:limit]


def _lexical(parts: list[str]) -> list[str] | None:
    """`.` and `..` folded away; None when `..` climbs above the root."""
    out: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                return None
            out.pop()
        else:
            out.append(part)
    return out


def resolve_inside(root: Path, name: str, mounted_at: str | None = None) -> str | None:
    """Where the link chain at `root/name` ends, as the container resolves it with `root` mounted at
    `mounted_at`, when that stays inside `root`: the relative name of a regular file there, else None.

    Resolved lexically, one component at a time (nothing on the host is followed): a relative target
    is taken from the link's directory, an absolute one only when it lies under `mounted_at`."""
    parts = safe_relative(name).split("/")
    mount = mounted_at.rstrip("/") if mounted_at else None
    hops = 0
    i = 0
    while i < len(parts):
        here = root.joinpath(*parts[: i + 1])
        try:
            st = os.lstat(here)
        except OSError:
            return None
        if not stat.S_ISLNK(st.st_mode):
            i += 1
            continue
        hops += 1
        if hops > _MAX_HOPS:
            return None
        try:
            target = os.readlink(here)
        except OSError:
            return None
        if target.startswith("/"):
            if mount is None or not (target == mount or target.startswith(mount + "/")):
                return None
            base = target[len(mount) :].split("/")
        else:
            base = parts[:i] + target.split("/")
        folded = _lexical(base + parts[i + 1 :])
        if not folded:
            return None
        parts, i = folded, 0
    return "/".join(parts)
