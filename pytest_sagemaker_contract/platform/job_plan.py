"""Stage 1 of a training job, plan: what is decided before the engine is touched.

A job goes plan → stage → run → collect → verdict (docs/architecture.md). The plan names the job's
containers and labels, lays out each host's /opt/ml on disk and picks which local channels the
containers read in place. `HostRun` and `JobState` are the records the later stages fill in; `DataPath`
is the interface of the one data path strategy a job gets (job_data.py holds the two).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..spec import ChannelSpec, TrainingJobSpec
from .channels import StagedChannel, local_staging_allowed
from .checkpoints import CheckpointSync
from .credentials import CredentialsEndpoint
from .data_path import ArchiveMeta
from .engine import LABEL_JOB, LABEL_RUN, Engine, MountSpec
from .interference import InterferenceWatcher
from .layout import Host, HostLayout, assign_hosts, training_job_arn
from .logs import LogBuffer, durable_log_dir
from .pipes import PipeFeeder
from .resources import PlatformCore
from .result import Restart, SecondaryStatusLog, Timeline
from .slots import Slot
from .spot import ReadWitness

__all__ = ["DataPath", "HostRun", "JobContext", "JobPlan", "JobState", "plan_job"]


@dataclass(eq=False)
class HostRun:
    """One host's container and what the run learned about it."""

    host: Host
    index: int
    layout: HostLayout
    #: The container's name (`sm-<job>-<host>-<suffix>`), fixed by the plan.
    name: str
    container_id: str | None = None
    start_error: str | None = None
    exit_code: int | None = None
    exited_at: float | None = None
    killed: bool = False
    #: The platform sent (or is sending) SIGKILL: a 137 then is the platform's doing.
    sigkill_sent: bool = False
    #: A sentence when the container was removed or killed from outside, or the engine went away.
    engine_fault: str | None = None
    #: Why the log stream broke off, when it did with an error.
    log_error: str | None = None
    channels: list[StagedChannel] = field(default_factory=list)
    feeders: list[PipeFeeder] = field(default_factory=list)
    #: Engine data path: FastFile channel -> the volume mounted read-only at its directory.
    fast_volumes: dict[str, str] = field(default_factory=dict)
    #: Bind path: local File-mode channel -> the copy-on-write overlay mounted at its directory.
    overlays: dict[str, MountSpec] = field(default_factory=dict)
    #: Engine data path: File channels read from the user's directory straight into the input archive.
    direct_sources: dict[str, Path] = field(default_factory=dict)
    #: Engine data path with Pipe channels: the helper container that feeds their FIFOs.
    helper_id: str | None = None
    log_thread: threading.Thread | None = None

    def stop_feeders(self) -> None:
        for feeder in self.feeders:
            feeder.stop()


@dataclass(frozen=True)
class JobPlan:
    """The job as planned: its request, names, hosts and local channels. Nothing here changes once made."""

    spec: TrainingJobSpec
    arn: str
    suffix: str
    job_dir: Path
    #: The run and job labels on every container, network and volume of the job (the engine adds the owner's).
    labels: Mapping[str, str]
    hosts: tuple[HostRun, ...]
    #: Channel name -> the user's local file or directory standing in for its S3 data.
    local: Mapping[str, Path]
    #: The local channels the containers read in place (no upload to S3 first).
    local_direct: Mapping[str, Path]
    gpus: str
    log_path: Path

    @property
    def command(self) -> Sequence[str] | None:
        """`train` as SageMaker passes it, unless the request gives an entrypoint or arguments."""
        spec = self.spec
        return ["train"] if spec.entrypoint is None and spec.arguments is None else spec.arguments

    def channel(self, name: str) -> ChannelSpec:
        return next(c for c in self.spec.channels if c.name == name)


def plan_job(
    platform: PlatformCore,
    spec: TrainingJobSpec,
    local_channels: Mapping[str, Path] | None,
    gpus: str | None,
) -> JobPlan:
    known = {c.name: c for c in spec.channels}
    local = {n: Path(p) for n, p in (local_channels or {}).items() if n in known}
    suffix = uuid.uuid4().hex[:6]
    job_dir = platform.workdir / f"{spec.name}-{suffix}"
    checkpoint_path = spec.checkpoint.local_path if spec.checkpoint else None
    hosts = tuple(
        HostRun(h, i, HostLayout(job_dir / h.name, checkpoint_path), f"sm-{spec.name[:40]}-{h.name}-{suffix}")
        for i, h in enumerate(assign_hosts(spec))
    )
    try:
        log_path = durable_log_dir(platform.run_id) / f"{job_dir.name}.log"
    except OSError:
        log_path = job_dir / "job.log"
    return JobPlan(
        spec=spec,
        arn=training_job_arn(spec, platform.region),
        suffix=suffix,
        job_dir=job_dir,
        labels={LABEL_RUN: platform.run_id, LABEL_JOB: f"{spec.name}-{suffix}"},
        hosts=hosts,
        local=local,
        local_direct={n: p for n, p in local.items() if local_staging_allowed(known[n])},
        gpus=gpus or platform.gpus,
        log_path=log_path,
    )


@dataclass(eq=False)
class JobState:
    """What the stages learn while the job runs; the verdict is decided from it (result.decide_job_status)."""

    timeline: Timeline = field(default_factory=Timeline)
    secondary_status: str = "Starting"
    #: SecondaryStatusTransitions, across every attempt of the job.
    transitions: SecondaryStatusLog = field(default_factory=SecondaryStatusLog)
    #: CreateTrainingJob returned (epoch seconds): MaxWaitTimeInSeconds counts from here.
    created_at: float = field(default_factory=time.time)
    #: The attempt running now (1 for the first run; a restart within the job adds one).
    attempt: int = 1
    #: An interruption (a managed spot reclaim) is under way for this attempt.
    interrupting: bool = False
    #: Seconds trained by earlier attempts: MaxRuntimeInSeconds counts them.
    trained_s: float = 0.0
    retries_used: int = 0
    restarts: list[Restart] = field(default_factory=list)
    #: Which restored checkpoints the running attempt reads (set on a restarted attempt where it can tell).
    witness: ReadWitness | None = None
    #: The attempt's feeders, followers, watchers and checkpoint syncs have ended (wind_down ran).
    wound_down: bool = False
    #: A problem with the request found while staging (e.g. a channel with no data): the job fails as a client error.
    client_error: str | None = None
    #: The first host that failed, with its exit code: its peers are then killed.
    failure: tuple[str, int | None] | None = None
    stop_reason: str | None = None
    #: When SIGKILL is due (epoch seconds) once a stop was requested.
    kill_due: float | None = None
    log_warnings: list[str] = field(default_factory=list)
    #: Bind path: local File channels' files -> (size, mtime) before the run, to see who changed them.
    fingerprints: dict[str, tuple[int, int]] = field(default_factory=dict)
    checkpoints: list[CheckpointSync] = field(default_factory=list)
    network_id: str | None = None
    network_name: str = ""
    #: The credentials pods whose network namespaces the hosts share (credentials.py, contract §11).
    pods: list[str] = field(default_factory=list)
    #: A single-host job's warm network and pod, taken from the platform's SlotPool (slots.py) and handed back.
    slot: Slot | None = None
    #: The job's credentials endpoint and the pod image serving it (job_run.job_credentials).
    credentials: tuple[CredentialsEndpoint, str] | None = None
    interference: InterferenceWatcher | None = None
    kill_timer: threading.Timer | None = None
    done: threading.Event = field(default_factory=threading.Event)
    stop_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Held while SIGKILL goes out, so the end of the job knows which hosts it killed.
    kill_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.transitions.enter(self.secondary_status, "Launching requested ML instances", self.created_at)

    def enter(self, status: str, message: str) -> None:
        """The job's SecondaryStatus is now `status` (recorded in SecondaryStatusTransitions)."""
        self.secondary_status = status
        self.transitions.enter(status, message)

    def phase(self) -> str:
        """The job's phase in words, for messages about what happened during it."""
        if self.stop_reason is None:
            return "the interruption's SIGTERM grace period" if self.interrupting else "training"
        return "the SIGTERM grace period" if self.timeline.sigkill_sent is None else "being killed"


class DataPath(Protocol):
    """How /opt/ml reaches one job's containers: bind mounts or the engine's API, chosen once per job for
    its plan (job_data.py)."""

    #: Warnings about what could not be copied out, for the result.
    problems: list[str]

    def prepare(self) -> None:
        """Before the containers are created (bind: the copy-on-write overlays of local File channels)."""

    def mounts(self, run: HostRun, read_only: Sequence[str]) -> tuple[dict[str, dict[str, str]], list[MountSpec]]:
        """The binds and mounts of a host's container; `read_only` are its FastFile channels."""

    def watches_local_inputs(self) -> bool:
        """Whether containers read local File channels in place, so the job watches them for changes."""

    def reads_directly(self, channel: ChannelSpec, local: Path) -> bool:
        """Whether the local File channel `local` goes into the container as it is, without a staged copy."""

    def pipe_engine(self) -> Engine | None:
        """The engine that feeds Pipe channels' FIFOs from inside, or None where this process feeds them."""

    def checkpoint_pull(self, run: HostRun) -> Callable[[], None] | None:
        """How a host's checkpoints are read during training, where the engine holds them."""

    def before_start(self) -> None:
        """Created, not started: inputs put into the containers where no host path reaches them."""

    def after_exit(self, state: JobState) -> None:
        """Exited: model and output copied out where no host path reaches them."""

    def packing_metadata(self) -> ArchiveMeta:
        """The real mode and owner of collected artifacts, keyed by their path on disk."""

    def remove_helpers(self) -> None:
        """Remove the helper containers (before the job's containers: volumes go only once unused)."""

    def remove_volumes(self) -> None:
        """Remove the job's volumes (after its containers)."""


@dataclass(eq=False)
class JobContext:
    """Everything a stage works with: the session's resources, the plan, the state and the data path."""

    platform: PlatformCore
    plan: JobPlan
    state: JobState
    data: DataPath
    logs: LogBuffer
