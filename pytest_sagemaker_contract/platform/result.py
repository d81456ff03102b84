"""What DescribeTrainingJob says about a finished job, and the pure rules that decide it.

`decide_job_status` turns the hosts' exit codes, the stop request and the staging error into
TrainingJobStatus, SecondaryStatus and FailureReason (contract §5, §6); it needs no engine, so every
shape of FailureReason is unit-tested.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .channels import StagedChannel
from .logs import TRUNCATION_MARK
from .s3 import S3Server, parse_s3_uri
from .signals import ProcessSignals
from .untrusted import UnsafeName, safe_join, safe_relative

__all__ = [
    "FINAL_MESSAGES",
    "INTERNAL_ERROR_PREFIX",
    "MAX_FAILURE_REASON",
    "OOM_REASON",
    "HostResult",
    "JobStatus",
    "Restart",
    "SecondaryStatusLog",
    "Timeline",
    "TrainingJobResult",
    "decide_job_status",
    "engine_fault_reason",
    "failure_reason",
]

OOM_REASON = (
    "OutOfMemoryError: Please use an instance type with more memory, or reduce the size of job data "
    "processed on an instance."
)
#: SageMaker's FailureReason prefix for failures on the platform's side, not the algorithm's.
INTERNAL_ERROR_PREFIX = "InternalServerError: "
#: DescribeTrainingJob's FailureReason holds at most 1024 characters.
MAX_FAILURE_REASON = 1024
#: Room kept for " (host algo-N)" on a multi-host job's FailureReason.
_HOST_SUFFIX_ROOM = 20


@dataclass
class Timeline:
    """Wall-clock epoch seconds, comparable with `docker events`."""

    created: float | None = None
    started: float | None = None
    sigterm_sent: float | None = None
    sigkill_sent: float | None = None
    #: When StopTrainingJob or MaxRuntimeExceeded asked for the stop (the trigger), before SIGTERM went out.
    stop_requested: float | None = None
    #: When SIGKILL is due: SIGTERM plus the grace period.
    kill_due: float | None = None
    exited: float | None = None
    finished: float | None = None
    process_tree: list[dict[str, str]] = field(default_factory=list)
    #: PID 1's SIGTERM disposition when SIGTERM was sent: "caught", "ignored", "default" or None (unknown).
    pid1_sigterm: str | None = None
    #: The process tree just before SIGKILL (empty when the container exited within the grace).
    process_tree_at_kill: list[dict[str, str]] = field(default_factory=list)
    #: What someone else did to the containers (docker kill, stop, restart, pause), one sentence per host, in
    #: the engine's event order; each is also that host's engine fault (interference.py).
    interference: list[str] = field(default_factory=list)
    #: Every process of the first host's container, with its SIGTERM disposition, just before SIGTERM
    #: (empty when it could not be read): the evidence of what the signal could do.
    signals_at_sigterm: list[ProcessSignals] = field(default_factory=list)

    @property
    def seconds_to_exit_after_sigterm(self) -> float | None:
        if self.sigterm_sent is None or self.exited is None:
            return None
        return max(0.0, self.exited - self.sigterm_sent)

    @property
    def training_seconds(self) -> float | None:
        if self.started is None or self.exited is None:
            return None
        return self.exited - self.started

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "started": self.started,
            "sigterm_sent": self.sigterm_sent,
            "sigkill_sent": self.sigkill_sent,
            "stop_requested": self.stop_requested,
            "kill_due": self.kill_due,
            "exited": self.exited,
            "finished": self.finished,
            "seconds_to_exit_after_sigterm": self.seconds_to_exit_after_sigterm,
            "process_tree": self.process_tree,
            "pid1_sigterm": self.pid1_sigterm,
            "process_tree_at_kill": self.process_tree_at_kill,
            "interference": list(self.interference),
            "signals_at_sigterm": [p.as_dict() for p in self.signals_at_sigterm],
        }


#: Statuses that end a job: the last transition's EndTime is its StartTime.
_TERMINAL = frozenset({"Completed", "Failed", "Stopped", "MaxRuntimeExceeded", "MaxWaitTimeExceeded"})


#: StatusMessage of each final SecondaryStatus (the wording of real jobs' messages is uncertain, docs/contract.md).
FINAL_MESSAGES = {
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Job stopped because it exceeded MaxRuntimeInSeconds",
    "MaxWaitTimeExceeded": "Job stopped because it exceeded MaxWaitTimeInSeconds (which covers every attempt)",
}


class SecondaryStatusLog:
    """DescribeTrainingJob's SecondaryStatusTransitions: each secondary status the job went through, with its
    StartTime, its EndTime once the next began, and a StatusMessage; a restarted job goes through Starting,
    Downloading and Training again (contract §11)."""

    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def enter(self, status: str, message: str, now: float | None = None) -> None:
        """The job is now in `status`; a repeat of the current status only updates its message."""
        at = time.time() if now is None else now
        with self._lock:
            last = self._entries[-1] if self._entries else None
            if last is not None and last["Status"] == status and "EndTime" not in last:
                last["StatusMessage"] = message
                return
            if last is not None and "EndTime" not in last:
                last["EndTime"] = at
            entry: dict[str, Any] = {"Status": status, "StartTime": at, "StatusMessage": message}
            if status in _TERMINAL:
                entry["EndTime"] = at
            self._entries.append(entry)

    def statuses(self) -> list[str]:
        with self._lock:
            return [e["Status"] for e in self._entries]

    def as_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries]


@dataclass
class Restart:
    """One restart within the same job: why the attempt ended and what the next attempt was given."""

    #: The attempt that ended (1 for the first run).
    attempt: int
    #: "Interrupted" (a managed spot reclaim) or "InternalServerError" (an engine fault, RetryStrategy).
    cause: str
    #: A sentence: what ended the attempt.
    reason: str
    #: When the attempt's last container exited (epoch seconds).
    at: float
    #: Checkpoint files the checkpoint S3 URI held when the attempt ended (synced during it and at its end).
    checkpoints_saved: list[str] = field(default_factory=list)
    #: Checkpoint files restored into the next attempt's fresh containers.
    restored: list[str] = field(default_factory=list)
    #: Of those, the files the next attempt read; None where the platform cannot tell (no access times).
    read: list[str] | None = None
    #: The ended attempt's timeline (its SIGTERM, SIGKILL, exit).
    timeline: Timeline = field(default_factory=Timeline)

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "cause": self.cause,
            "reason": self.reason,
            "at": self.at,
            "checkpoints_saved": list(self.checkpoints_saved),
            "restored": list(self.restored),
            "read": None if self.read is None else list(self.read),
        }


@dataclass
class HostResult:
    host: str
    container_id: str | None
    exit_code: int | None
    oom_killed: bool = False
    killed: bool = False
    start_error: str | None = None
    failure_text: str | None = None
    #: Set when the container was removed or killed from outside the platform, or the engine stopped
    #: answering: a sentence naming what happened. The exit code then says nothing about the image.
    engine_fault: str | None = None
    model_files: list[str] = field(default_factory=list)
    output_files: list[str] = field(default_factory=list)
    channels: list[StagedChannel] = field(default_factory=list)
    #: Where the container wrote files when /opt/ml/model stayed empty (absolute container paths, outside
    #: /opt/ml/input): the first place to look when a model "went missing".
    written_elsewhere: list[str] = field(default_factory=list)
    #: When this host's container exited (epoch seconds), or None when it never ran.
    exited: float | None = None


@dataclass
class TrainingJobResult:
    """What DescribeTrainingJob would say about the finished job, plus local conveniences."""

    TrainingJobName: str
    TrainingJobArn: str
    TrainingJobStatus: str
    SecondaryStatus: str
    FailureReason: str | None
    ModelArtifacts: dict[str, str]
    exit_code: int | None
    hosts: list[HostResult]
    logs: str
    timeline: Timeline
    model_files: list[str]
    output_files: list[str]
    output_data_uri: str | None
    model_clashes: list[str]
    not_simulated: tuple[str, ...]
    #: Checkpoint files restored into the container before it started (a resumed job sees these).
    checkpoints_restored: list[str]
    #: Log lines printed after SIGTERM was sent (what the handler said, if anything).
    logs_after_sigterm: list[str]
    #: Things the platform noticed that SageMaker would not have shown (e.g. a local input modified in place).
    job_dir: Path | None
    s3: S3Server = field(repr=False)
    warnings: list[str] = field(default_factory=list)
    #: The complete log, spooled as it arrived (host-prefixed for N hosts). It is deleted when this result
    #: is garbage-collected (or at exit) unless `keep_log()` was called or the platform keeps its files.
    log_path: Path | None = None
    #: Faults of the environment, not the image (a container removed or killed from outside, the engine
    #: gone): when any is set the job is Failed with an InternalServerError and proves nothing about the image.
    engine_faults: list[str] = field(default_factory=list)
    #: The model's symbolic links, `name -> target`: kept as links in model.tar.gz, they hold no model bytes.
    model_links: list[str] = field(default_factory=list)
    #: DescribeTrainingJob's SecondaryStatusTransitions (Status, StartTime, EndTime, StatusMessage).
    SecondaryStatusTransitions: list[dict[str, Any]] = field(default_factory=list)
    #: Restarts within this job (managed spot interruptions, RetryStrategy retries), in order.
    restarts: list[Restart] = field(default_factory=list)
    _log_finalizer: Any = field(init=False, default=None, repr=False, compare=False)

    @property
    def completed(self) -> bool:
        return self.TrainingJobStatus == "Completed"

    @property
    def killed(self) -> bool:
        """True when some host was still running at the end of the grace period and got SIGKILL."""
        return any(h.killed for h in self.hosts)

    def describe(self) -> dict[str, Any]:
        """The DescribeTrainingJob-shaped view (the fields the local platform knows)."""
        out: dict[str, Any] = {
            "TrainingJobName": self.TrainingJobName,
            "TrainingJobArn": self.TrainingJobArn,
            "TrainingJobStatus": self.TrainingJobStatus,
            "SecondaryStatus": self.SecondaryStatus,
            "ModelArtifacts": dict(self.ModelArtifacts),
        }
        if self.FailureReason is not None:
            out["FailureReason"] = self.FailureReason
        if self.timeline.started is not None:
            out["TrainingStartTime"] = self.timeline.started
        if self.timeline.exited is not None:
            out["TrainingEndTime"] = self.timeline.exited
        if self.SecondaryStatusTransitions:
            out["SecondaryStatusTransitions"] = [dict(t) for t in self.SecondaryStatusTransitions]
        return out

    def log_tail(self, lines: int = 20) -> str:
        """The real last `lines` lines of the log (never the truncation header)."""
        if lines <= 0:
            return ""
        kept = self.logs.splitlines()
        if kept and kept[0].startswith(TRUNCATION_MARK):
            kept = kept[1:]
        return "\n".join(kept[-lines:])

    def discard_log_with_result(self) -> None:
        """Delete the spooled log file when this result is garbage-collected (or at interpreter exit)."""
        if self.log_path is not None and self._log_finalizer is None:
            self._log_finalizer = weakref.finalize(self, _discard_log, self.log_path)

    def keep_log(self) -> Path | None:
        """Keep the spooled log file after this result is gone (and after the session); its path."""
        if self._log_finalizer is not None:
            self._log_finalizer.detach()
        if self.log_path is not None and self.log_path.exists():
            return self.log_path
        return None

    def model_tar(self) -> bytes:
        """model.tar.gz as uploaded to S3 (a job with CompressionType NONE has none: `extract_model` reads both)."""
        uri = self.ModelArtifacts["S3ModelArtifacts"]
        if uri.endswith("/"):
            raise FileNotFoundError(
                f"no model.tar.gz: the model was uploaded uncompressed (CompressionType NONE) to {uri}"
            )
        return self.s3.get_bytes(uri)

    def _download_uncompressed(self, uri: str, target: Path) -> Path:
        """CompressionType NONE: every object under the model prefix, at its name relative to it."""
        _bucket, prefix = parse_s3_uri(uri)
        for obj in self.s3.objects(uri):
            dest = safe_join(target, obj.key[len(prefix) :])
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.s3.download(obj, dest)
        return target

    def extract_model(self, dest: str | os.PathLike[str]) -> Path:
        """Download model.tar.gz from the platform's S3 and unpack it into `dest`.

        The archive is the image's: members are unpacked with tarfile's `data` filter one by one, and a
        member it refuses (a link to an absolute path or out of `dest`, a name with `..`, a device) is
        skipped, never written through; the skipped names come in one UserWarning."""
        target = Path(dest)
        target.mkdir(parents=True, exist_ok=True)
        uri = self.ModelArtifacts["S3ModelArtifacts"]
        if uri.endswith("/"):
            return self._download_uncompressed(uri, target)
        obj = self.s3.head(uri)
        if obj is None:
            raise FileNotFoundError(f"no model.tar.gz at {uri}")
        skipped: list[str] = []
        with tempfile.TemporaryDirectory(prefix="sm-contract-model-") as scratch:
            archive = Path(scratch) / "model.tar.gz"
            self.s3.download(obj, archive)  # streamed to disk: a large model never sits in memory whole
            with tarfile.open(archive, mode="r:gz") as tar:
                for member in tar:
                    why = _unsafe_member(member, target)
                    if why is None:
                        try:
                            if hasattr(tarfile, "data_filter"):
                                tar.extract(member, target, filter="data")
                            else:  # checked by _unsafe_member, which keeps links out on such a Python
                                tar.extract(member, target)
                            continue
                        except tarfile.FilterError as exc:
                            why = str(exc)
                    skipped.append(f"{member.name} ({why})")
        if skipped:
            warnings.warn(
                f"extract_model: {len(skipped)} member(s) of {uri} not extracted, as they would reach outside "
                f"{target}: {'; '.join(skipped[:5])}",
                UserWarning,
                stacklevel=2,
            )
        return target


def _unsafe_member(member: tarfile.TarInfo, dest: Path) -> str | None:
    """Why a member may not be extracted into `dest`, checked here too for Pythons without tarfile filters."""
    try:
        safe_relative(member.name.rstrip("/"))
    except UnsafeName as exc:
        return exc.why
    if member.issym() or member.islnk():
        if not hasattr(tarfile, "data_filter"):
            return "a link: this Python has no tarfile extraction filters (3.10.12+, 3.11.4+) to place it safely"
        if member.linkname.startswith("/"):
            return f"a link to the absolute path {member.linkname}"
        base = (dest / member.name).parent if member.issym() else dest
        resolved = os.path.normpath(os.path.join(base, member.linkname))
        if os.path.commonpath([os.path.normpath(dest), resolved]) != os.path.normpath(dest):
            return f"a link to {member.linkname}, outside the model"
    elif not (member.isfile() or member.isdir()):
        return "not a file, directory or link"
    return None


def _discard_log(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the run's log folder, once nothing is kept in it


@dataclass(frozen=True)
class JobStatus:
    TrainingJobStatus: str
    SecondaryStatus: str
    FailureReason: str | None
    #: The exit code that decided the verdict (None when no container decided it).
    exit_code: int | None


def failure_reason(failed: HostResult, host_count: int, oom: bool) -> str:
    """FailureReason for a failed host: OOM, a container that could not start, or /opt/ml/output/failure.

    The failure file's text is cut so the whole reason, exit code (and host) included, fits in 1024
    characters: the part a user needs most, the exit code, is never the part that is lost.
    """
    code = failed.exit_code
    if oom and code == 137:
        reason = OOM_REASON
    elif failed.start_error is not None:
        reason = f"AlgorithmError: CannotStartContainerError: {failed.start_error}, exit code: {code}"
    else:
        text = (failed.failure_text or "").strip() or "See job logs for more information"
        suffix = f", exit code: {code}"
        room = MAX_FAILURE_REASON - len("AlgorithmError: ") - len(suffix) - (_HOST_SUFFIX_ROOM if host_count > 1 else 0)
        reason = f"AlgorithmError: {text[:room]}{suffix}"
    if host_count > 1:
        reason = f"{reason} (host {failed.host})"
    return reason


def engine_fault_reason(faulted: HostResult) -> str:
    """FailureReason for an engine fault: SageMaker's wording for a failure on the platform's side."""
    text = (faulted.engine_fault or "").strip()
    return f"{INTERNAL_ERROR_PREFIX}{text}"[:MAX_FAILURE_REASON]


def decide_job_status(
    hosts: Sequence[HostResult],
    *,
    client_error: str | None = None,
    first_failure: str | None = None,
    stop_reason: str | None = None,
    oom: bool = False,
) -> JobStatus:
    """The job's status from its hosts, in SageMaker's precedence.

    A staging error (ClientError) fails the job before any container ran. An engine fault (a container
    removed or killed from outside the platform, the engine gone) fails it next, as SageMaker's
    InternalServerError: the exit code it caused is the platform's doing, not the image's. A stop (StopTrainingJob,
    MaxRuntimeExceeded or a spot job's MaxWaitTimeExceeded) wins over the exit codes it caused: the job is
    Stopped, whatever the containers returned. Otherwise the first host to fail (`first_failure`, else the
    first non-zero exit) decides FailureReason; all hosts at 0 is Completed.
    """
    if client_error is not None:
        return JobStatus("Failed", "Failed", client_error, None)
    faulted = next((h for h in hosts if h.engine_fault), None)
    if faulted is not None:
        return JobStatus("Failed", "Failed", engine_fault_reason(faulted), faulted.exit_code)
    if stop_reason is not None:
        code = next((h.exit_code for h in hosts if h.exit_code not in (0, None)), hosts[0].exit_code if hosts else None)
        return JobStatus("Stopped", stop_reason, None, code)
    failed = next((h for h in hosts if h.host == first_failure), None) if first_failure is not None else None
    if failed is None:
        failed = next((h for h in hosts if h.exit_code not in (0, None)), None)
    if failed is None:
        return JobStatus("Completed", "Completed", None, 0)
    return JobStatus("Failed", "Failed", failure_reason(failed, len(hosts), oom), failed.exit_code)
