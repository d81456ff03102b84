"""Checkpoints (contract §3, §5): restored from S3 before the start, synced up while training, deletes mirrored."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from . import untrusted
from .s3 import S3Object, S3Server, parse_s3_uri
from .untrusted import FILE, LINK

__all__ = ["CheckpointSync"]


class CheckpointSync:
    """Keeps one host's checkpoint directory and the CheckpointConfig S3 URI in step.

    Sync runs every `interval_s` during training (so a job that is SIGKILLed keeps what had been
    synced) and once more after the container exits.

    Both directions go through `untrusted` (the image writes the directory and may write the S3 prefix):
    a key that would land outside the directory is not restored, and a link is never followed on this
    side. SageMaker uploads the checkpoint directory's files; a link whose chain ends at a file inside
    the directory (`latest -> ckpt-5.pt`, resolved as the container sees it with the directory at
    `mounted_at`) is uploaded as that file's bytes, any other link is skipped. Each refusal is a warning.
    """

    def __init__(
        self,
        s3: S3Server,
        uri: str,
        local: Path,
        interval_s: float = 1.0,
        pull: Callable[[], None] | None = None,
        mounted_at: str | None = None,
    ) -> None:
        #: Called before each sync to bring `local` up to date (the engine data path copies it out of the container).
        self.pull = pull
        self.s3 = s3
        self.uri = uri.rstrip("/")
        self.local = local
        self.mounted_at = mounted_at
        #: What was refused (unsafe keys, links leaving the directory), one sentence each, in order.
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self.interval_s = interval_s
        self.bucket, self.prefix = parse_s3_uri(self.uri)
        self.restored: list[str] = []
        self.uploaded: set[str] = set()
        self.deleted: set[str] = set()
        self._state: dict[str, tuple[int, int, int]] = {}
        self._remote: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _warn(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warnings.append(text)

    def restore(self) -> list[str]:
        """Copy what the checkpoint URI holds into the local path (a restarted job resumes from it).

        Keys that would not land inside the local path (`..`, a leading `/`, empty segments) and keys
        under another key's file are skipped with a warning: never written."""
        chosen: dict[str, S3Object] = {}
        for obj in self.s3.objects(self.uri + "/"):
            rel = obj.key[len(self.prefix) + 1 :] if self.prefix else obj.key
            try:
                untrusted.safe_join(self.local, rel)
            except untrusted.UnsafeName as exc:
                self._warn(
                    f"key:{obj.key}",
                    f"checkpoint object s3://{self.bucket}/{obj.key} was not restored: its name below the "
                    f"checkpoint prefix {exc.why}; SageMaker restores each object at LocalPath/<key below "
                    "S3Uri>, so it would land outside LocalPath",
                )
                continue
            chosen[rel] = obj
        pairs = []
        for rel, obj in sorted(chosen.items()):
            parts = rel.split("/")
            under = next(("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in chosen), None)
            if under is not None:
                self._warn(
                    f"key:{obj.key}",
                    f"checkpoint object s3://{self.bucket}/{obj.key} was not restored: {under} is a file "
                    "(another object), so it cannot be a directory too",
                )
                continue
            pairs.append((obj, untrusted.safe_join(self.local, rel)))
            self._remote.add(rel)
        self.s3.download_many(pairs)
        for _obj, path in pairs:
            rel = path.relative_to(self.local).as_posix()
            st = path.stat()
            self._state[rel] = (st.st_mtime_ns, st.st_size, st.st_ino)
        self.restored = sorted(self._remote)
        return self.restored

    def _source(self, rel: str, kind: str, target: str | None) -> str | None:
        """The file whose bytes go up for `rel`: itself, or for a link its end inside the directory."""
        if kind == FILE:
            return rel
        resolved = untrusted.resolve_inside(self.local, rel, self.mounted_at)
        if resolved is None:
            self._warn(
                f"link:{rel}:{target}",
                f"checkpoint {rel} is a symbolic link (to {target}) that does not end at a file inside the "
                "checkpoint directory: not uploaded (the platform never follows a link the image made out of "
                "the directory); write checkpoints as regular files",
            )
        return resolved

    def sync(self) -> None:
        with self._lock:
            if self.pull is not None:
                self.pull()
            self.s3.ensure_bucket(self.bucket)
            seen: dict[str, tuple[int, int, int]] = {}
            for entry in untrusted.walk(self.local):
                if entry.kind not in (FILE, LINK):
                    continue
                source = self._source(entry.name, entry.kind, entry.target)
                if source is None:
                    continue
                try:
                    with untrusted.open_file(self.local, source) as fh:
                        state = _state_of(fh.fileno())
                        seen[entry.name] = state
                        if self._state.get(entry.name) == state:
                            continue
                        self.s3.client().upload_fileobj(fh, self.bucket, self._key(entry.name))
                except (OSError, untrusted.UnsafeName):  # gone, or swapped for a link or a FIFO since the walk
                    seen.pop(entry.name, None)
                    continue
                self._remote.add(entry.name)
                self.uploaded.add(entry.name)
            for rel in sorted(self._remote - set(seen)):
                self.s3.client().delete_object(Bucket=self.bucket, Key=self._key(rel))
                self._remote.discard(rel)
                self.deleted.add(rel)
            self._state = seen

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):  # a transient S3 error: the next round or the final sync catches up
                self.sync()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="sm-checkpoint-sync", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sync()


def _state_of(fd: int) -> tuple[int, int, int]:
    """What says a file changed: mtime, size and inode (a link retargeted at another file changes the inode)."""
    st = os.fstat(fd)
    return (st.st_mtime_ns, st.st_size, st.st_ino)
