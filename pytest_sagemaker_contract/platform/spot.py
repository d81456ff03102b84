"""Restarts within one training job (contract §11): managed spot interruptions and RetryStrategy, as pure rules.

A managed spot job that is interrupted restarts itself; MaxWaitTimeInSeconds bounds the whole job, every
attempt and the waits between them, and ends it Stopped/MaxWaitTimeExceeded; MaxRuntimeInSeconds bounds
the time spent training, summed over the attempts. RetryStrategy restarts a job that failed with an
InternalServerError (here: an engine fault) up to MaximumRetryAttempts times. `ReadWitness` is how the
platform tells whether a restarted run read the checkpoints restored into it: their access times.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "INTERRUPTED",
    "RETRIED",
    "Deadline",
    "ReadWitness",
    "next_deadline",
    "restart_cause",
]

#: Restart causes, as the restart records and SecondaryStatusTransitions name them.
INTERRUPTED = "Interrupted"
RETRIED = "InternalServerError"
#: How far back a restored checkpoint's access time is set, so any read moves it (relatime updates an
#: access time older than the modification time).
_BACKDATE_NS = 2 * 86400 * 10**9


@dataclass(frozen=True)
class Deadline:
    """When the running attempt must be stopped, and the SecondaryStatus the stop ends with."""

    at: float
    reason: str


def next_deadline(
    *, created: float, started: float, trained_s: float, max_runtime_s: float, max_wait_s: float | None
) -> Deadline:
    """The attempt started at `started` may train what is left of MaxRuntimeInSeconds after `trained_s` seconds
    of earlier attempts; a spot job also ends MaxWaitTimeInSeconds after its creation, whichever comes first
    (a tie goes to MaxRuntime: the job trained its full runtime)."""
    runtime = Deadline(started + max(0.0, max_runtime_s - trained_s), "MaxRuntimeExceeded")
    if max_wait_s is None:
        return runtime
    wait = Deadline(created + max_wait_s, "MaxWaitTimeExceeded")
    return wait if wait.at < runtime.at else runtime


def restart_cause(
    *,
    interrupted: bool,
    engine_fault: str | None,
    stop_reason: str | None,
    managed_spot: bool,
    retries_used: int,
    max_retries: int,
) -> str | None:
    """Why the job restarts after this attempt, or None when it ends here.

    A stop (StopTrainingJob, MaxRuntime, MaxWait) always ends the job. An interruption restarts a managed
    spot job. An engine fault (SageMaker's InternalServerError) restarts the job while RetryStrategy has
    attempts left; otherwise it fails the job."""
    if stop_reason is not None:
        return None
    if interrupted and managed_spot:
        return INTERRUPTED
    if engine_fault is not None and retries_used < max_retries:
        return RETRIED
    return None


class ReadWitness:
    """Which restored checkpoint files a run read, from their access times on this machine.

    Armed before the run starts: every restored file's access time is set two days before its modification
    time (bytes and mtime unchanged, so checkpoint syncs see no change) and its inode is held open (O_PATH,
    which reads nothing), so a file the image replaces (write, then rename) is still seen. A read moves the
    access time (relatime and strictatime both do). The platform's own checkpoint sync reads a file only once
    the image changed it, so only a read before the image's first change counts; a watcher looks every
    `poll_s` seconds (a read, an in-place rewrite and a sync within one look are a blind spot). Where the
    filesystem keeps no access times, `read` says None.
    """

    def __init__(self, files: dict[str, Path], supported: bool, poll_s: float = 0.02) -> None:
        self.supported = supported
        #: Restored name -> (O_PATH descriptor, mtime, the access time set), for the files that could be armed.
        self._armed: dict[str, tuple[int, int, int]] = {}
        self._seen: set[str] = set()
        self._changed: set[str] = set()
        self._stop = threading.Event()
        for name, path in files.items():
            with contextlib.suppress(OSError):
                st = path.stat(follow_symlinks=False)
                atime = st.st_mtime_ns - _BACKDATE_NS
                os.utime(path, ns=(atime, st.st_mtime_ns), follow_symlinks=False)
                fd = os.open(path, getattr(os, "O_PATH", os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC)
                self._armed[name] = (fd, st.st_mtime_ns, atime)
        self._thread = threading.Thread(target=self._watch, args=(poll_s,), name="sm-ckpt-witness", daemon=True)
        if supported and self._armed:
            self._thread.start()

    @classmethod
    def arm(cls, files: dict[str, Path], probe_dir: Path) -> ReadWitness:
        return cls(files, atime_recorded(probe_dir))

    def _check(self) -> None:
        """Latch the files read since the last look. Only reads before the image's first change to a file count:
        the checkpoint sync reads a file after each change, so a later access time may be the platform's."""
        for name, (fd, mtime, atime) in list(self._armed.items()):
            if name in self._seen or name in self._changed:
                continue
            with contextlib.suppress(OSError):
                st = os.fstat(fd)
                if st.st_mtime_ns != mtime:
                    self._changed.add(name)  # first seen changed: a read before the change left an older atime
                if st.st_atime_ns > atime and (st.st_mtime_ns == mtime or st.st_atime_ns < st.st_mtime_ns):
                    self._seen.add(name)

    def _watch(self, poll_s: float) -> None:
        while not self._stop.wait(poll_s):
            self._check()

    def read(self) -> list[str] | None:
        """The armed files the run read, sorted; None where the platform cannot tell. Ends the watch."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._check()
        for fd, _mtime, _atime in self._armed.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._armed = {}
        return sorted(self._seen) if self.supported else None


def atime_recorded(directory: Path) -> bool:
    """Whether a read of a file in `directory` moves its access time (no noatime mount)."""
    probe = directory / ".sm-contract-atime-probe"
    try:
        probe.write_bytes(b"probe")
        st = probe.stat()
        os.utime(probe, ns=(st.st_mtime_ns - _BACKDATE_NS, st.st_mtime_ns))
        probe.read_bytes()
        return probe.stat().st_atime_ns > st.st_mtime_ns - _BACKDATE_NS
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
