"""Checkpoints (contract §3, §5): restored from S3 before the start, synced up while training, deletes mirrored."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from .s3 import S3Server, parse_s3_uri, relative_key

__all__ = ["CheckpointSync"]


class CheckpointSync:
    """Keeps one host's checkpoint directory and the CheckpointConfig S3 URI in step.

    Sync runs every `interval_s` during training (so a job that is SIGKILLed keeps what had been
    synced) and once more after the container exits.
    """

    def __init__(
        self, s3: S3Server, uri: str, local: Path, interval_s: float = 1.0, pull: Callable[[], None] | None = None
    ) -> None:
        #: Called before each sync to bring `local` up to date (the engine data path copies it out of the container).
        self.pull = pull
        self.s3 = s3
        self.uri = uri.rstrip("/")
        self.local = local
        self.interval_s = interval_s
        self.bucket, self.prefix = parse_s3_uri(self.uri)
        self.restored: list[str] = []
        self.uploaded: set[str] = set()
        self.deleted: set[str] = set()
        self._state: dict[str, tuple[int, int]] = {}
        self._remote: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def restore(self) -> list[str]:
        """Copy what the checkpoint URI holds into the local path (a restarted job resumes from it)."""
        pairs = []
        for obj in self.s3.objects(self.uri + "/"):
            rel = relative_key(self.prefix + "/", obj.key)
            pairs.append((obj, self.local / rel))
            self._remote.add(rel)
        self.s3.download_many(pairs)
        for _obj, path in pairs:
            rel = path.relative_to(self.local).as_posix()
            st = path.stat()
            self._state[rel] = (st.st_mtime_ns, st.st_size)
        self.restored = sorted(self._remote)
        return self.restored

    def sync(self) -> None:
        with self._lock:
            if self.pull is not None:
                self.pull()
            self.s3.ensure_bucket(self.bucket)
            seen: dict[str, tuple[int, int]] = {}
            for root, _dirs, files in os.walk(self.local):
                for name in files:
                    path = Path(root, name)
                    try:
                        st = path.stat()
                    except FileNotFoundError:
                        continue
                    rel = path.relative_to(self.local).as_posix()
                    seen[rel] = (st.st_mtime_ns, st.st_size)
                    if self._state.get(rel) != seen[rel]:
                        try:
                            self.s3.client().upload_file(str(path), self.bucket, self._key(rel))
                        except FileNotFoundError:
                            continue
                        self._remote.add(rel)
                        self.uploaded.add(rel)
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
