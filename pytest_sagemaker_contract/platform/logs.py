"""Log capture: every host's lines in arrival order, spooled to a file, waitable by regex.

Every line goes to the job's log file as it arrives, so the log is complete whatever its size; memory
holds only a bounded window of the last lines (for `tail`, `since` and the result's `logs` when the
log is large). `wait_for` sees every line: a waiter registered while the job runs checks each new line
as it is added, and the lines that arrived before it are read back from the window and the file.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .owner import OWNER_FILE, Owner, current_owner

__all__ = [
    "MAX_LINE_BYTES",
    "TAIL_LINES",
    "TEXT_CAP",
    "TRUNCATION_MARK",
    "LogBuffer",
    "LogSink",
    "claim_log_dir",
    "durable_log_dir",
    "log_root",
    "reap_dead_log_dirs",
    "release_log_dir",
    "truncation_header",
]

#: Called with (host, line) for every line as it arrives.
LogSink = Callable[[str, str], None]

#: How many of the last lines memory keeps.
TAIL_LINES = 2000
#: Above this many characters of log, `text()` holds a header and the last lines instead of everything.
TEXT_CAP = 10_000_000
#: A container line longer than this (no newline) is split, so one endless line cannot fill memory.
MAX_LINE_BYTES = 1 << 20


#: How the first line of a truncated `text()` starts.
TRUNCATION_MARK = "[sagemaker-contract: log truncated to the last "


def truncation_header(lines: int, path: Path | None) -> str:
    where = f"full log: {path}" if path is not None else "no full log was kept"
    return f"{TRUNCATION_MARK}{lines} lines; {where}]"


def durable_log_dir(run_id: str) -> Path:
    """Where a run's job logs are spooled, outside its work directory so a kept log outlives the session:
    `<log root>/<run_id>/`, private to this user (see `log_root`)."""
    folder = log_root() / run_id
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _private(path: Path) -> bool:
    """True when `path` is a real directory (not a link) of this user; made private (0700) if it was not."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)  # a directory this user owns in a sticky /tmp: no one else can swap it
    return True


_FALLBACK_ROOTS: dict[str, Path] = {}
_ROOT_LOCK = threading.Lock()


def log_root() -> Path:
    """`$TMPDIR/sm-contract-logs-<uid>`, one per user, when it is a directory this user owns; it is made private.

    In a shared /tmp another user can create that name first (or a link there) to read or redirect the logs:
    such a root is never written into; this process uses a fresh private `sm-contract-logs-<uid>-*` beside it.
    """
    base = Path(tempfile.gettempdir())
    root = base / f"sm-contract-logs-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    if _private(root):
        return root
    with _ROOT_LOCK:
        fallback = _FALLBACK_ROOTS.get(str(base))
        if fallback is None or not _private(fallback):
            fallback = Path(tempfile.mkdtemp(prefix=f"{root.name}-", dir=base))
            _FALLBACK_ROOTS[str(base)] = fallback
        return fallback


def _log_roots() -> list[Path]:
    """Every log root of this user under the temp directory (the canonical one and any fallbacks) it owns."""
    base = Path(tempfile.gettempdir())
    name = f"sm-contract-logs-{os.getuid()}"
    return [p for p in [base / name, *sorted(base.glob(f"{name}-*"))] if _private(p)]


def claim_log_dir(run_id: str) -> Path:
    """The run's log folder, marked as in use by this process (the owner file): if the process dies without
    `release_log_dir` (SIGKILL, a crash), a later session's `reap_dead_log_dirs` removes it."""
    folder = durable_log_dir(run_id)
    (folder / OWNER_FILE).write_text(json.dumps({"owner": current_owner().labels()}))
    return folder


def release_log_dir(run_id: str) -> None:
    """The session ended in order: what is left in its log folder are logs kept on purpose (a failed check's)."""
    folder = log_root() / run_id
    with contextlib.suppress(OSError):
        (folder / OWNER_FILE).unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty


def reap_dead_log_dirs() -> list[str]:
    """Remove the log folders of this user's sessions whose process died without releasing them; one line each.

    Judged by the owner file's process (a live or unknown owner is left alone); never follows a link.
    """
    removed: list[str] = []
    for root in _log_roots():
        for folder in root.iterdir():
            try:
                if not stat.S_ISDIR(os.lstat(folder).st_mode):
                    continue
                record = json.loads((folder / OWNER_FILE).read_text())
                labels = record.get("owner", record) if isinstance(record, dict) else {}
                owner = Owner.from_mapping(labels)
            except (OSError, ValueError, AttributeError):
                continue
            if owner is not None and owner.is_dead():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(f"log folder {folder}")
    return removed


@dataclass
class _Line:
    seq: int
    time: float
    text: str
    #: Where the line starts in the log file.
    offset: int


class _Waiter:
    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.match: re.Match[str] | None = None


class LogBuffer:
    """Lines from every host, in arrival order: all in `path`, the last ones in memory, waitable by regex.

    Without a `path` nothing is spooled and lines beyond the window are lost (for tests and tools only).
    """

    def __init__(
        self,
        multi_host: bool,
        sink: LogSink | None,
        path: Path | None = None,
        *,
        tail_lines: int = TAIL_LINES,
        text_cap: int = TEXT_CAP,
    ) -> None:
        self._cond = threading.Condition()
        self._multi = multi_host
        self._sink = sink
        self.path = path
        self._tail_lines = max(1, tail_lines)
        self._text_cap = text_cap
        self._window: collections.deque[_Line] = collections.deque()
        self._window_chars = 0
        self._count = 0
        self._chars = 0
        self._offset = 0
        self._waiters: list[_Waiter] = []
        self._file: BinaryIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "wb")  # noqa: SIM115 (closed by close())

    # -- writing --------------------------------------------------------------------------

    def add(self, host: str, line: str) -> None:
        self.add_many(host, (line,))

    def add_many(self, host: str, lines: Iterable[str]) -> None:
        """Add lines of one host (one lock and one clock read for the lot)."""
        raw_lines = list(lines)
        texts = [f"[{host}] {line}" if self._multi else line for line in raw_lines]
        if not texts:
            return
        now = time.time()
        with self._cond:
            encoded = [t.encode("utf-8", "replace") + b"\n" for t in texts]
            self._write(b"".join(encoded))
            for text, raw in zip(texts, encoded, strict=True):
                self._count += 1
                self._chars += len(text) + 1
                self._window.append(_Line(self._count, now, text, self._offset))
                self._offset += len(raw)
                self._window_chars += len(text) + 1
                for waiter in self._waiters:
                    if waiter.match is None:
                        waiter.match = waiter.pattern.search(text)
            while len(self._window) > self._tail_lines or (
                len(self._window) > 1 and self._window_chars > self._text_cap
            ):
                self._window_chars -= len(self._window.popleft().text) + 1
            self._cond.notify_all()
        if self._sink is not None:
            for line in raw_lines:
                self._sink(host, line)

    def _write(self, data: bytes) -> None:
        if self.path is None:
            return
        if self._file is not None:
            self._file.write(data)
        else:  # a line that came after close(): still appended, never dropped
            with open(self.path, "ab") as fh:
                fh.write(data)

    def close(self) -> None:
        """Flush and close the file; lines added later are still appended to it."""
        with self._cond:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    # -- reading --------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """How many lines have arrived."""
        with self._cond:
            return self._count

    @property
    def truncated(self) -> bool:
        """True when `text()` cannot hold the whole log (it is over the cap or lines left the window unspooled)."""
        with self._cond:
            return self._truncated()

    def _truncated(self) -> bool:
        if self.path is None:
            return len(self._window) < self._count
        return self._chars > self._text_cap

    def text(self) -> str:
        """The whole log when under the cap; else a header naming the file, then the last lines."""
        with self._cond:
            if not self._truncated():
                if self.path is None:
                    return "\n".join(line.text for line in self._window)
                self._flush()
                size = self._offset
            else:
                header = truncation_header(len(self._window), self.path)
                return "\n".join([header, *(line.text for line in self._window)])
        with open(self.path, "rb") as fh:
            data = fh.read(size)
        return data.decode("utf-8", "replace").removesuffix("\n")

    def tail(self, n: int) -> list[str]:
        """The last `n` lines (at most the window's)."""
        with self._cond:
            window = list(self._window)
        return [line.text for line in window[-n:]] if n > 0 else []

    def since(self, when: float) -> list[str]:
        """Lines that arrived at or after `when` (epoch seconds), at most the window's last lines."""
        with self._cond:
            return [line.text for line in self._window if line.time >= when]

    def wait_for(self, pattern: re.Pattern[str], timeout: float, done: threading.Event) -> re.Match[str] | None:
        """The first line matching `pattern`, already arrived or arriving within `timeout`; None if `done` first."""
        deadline = time.monotonic() + timeout
        waiter = _Waiter(pattern)
        with self._cond:
            self._flush()
            window = list(self._window)
            spooled_end = window[0].offset if window else self._offset
            self._waiters.append(waiter)
        try:
            if window and window[0].seq > 1 and self.path is not None:
                match = self._scan_file(pattern, spooled_end)
                if match is not None:
                    return match
            for line in window:
                match = pattern.search(line.text)
                if match is not None:
                    return match
            with self._cond:
                while waiter.match is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or done.is_set():
                        return None
                    self._cond.wait(min(remaining, 0.25))
                return waiter.match
        finally:
            with self._cond:
                self._waiters.remove(waiter)

    def _scan_file(self, pattern: re.Pattern[str], end: int) -> re.Match[str] | None:
        """The first match in the file's lines before byte `end` (the lines that already left the window)."""
        assert self.path is not None
        read = 0
        with open(self.path, "rb") as fh:
            while read < end:
                raw = fh.readline()
                if not raw:
                    break
                read += len(raw)
                match = pattern.search(raw.decode("utf-8", "replace").removesuffix("\n"))
                if match is not None:
                    return match
        return None
