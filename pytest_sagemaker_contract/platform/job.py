"""One training job across N hosts: stage, start, stop, wait, export — and the result SageMaker would report."""

from __future__ import annotations

import contextlib
import filecmp
import io
import os
import re
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..spec import TrainingJobSpec
from . import gpu
from .channels import (
    ChannelError,
    StagedChannel,
    local_staging_allowed,
    source_fingerprint,
    stage_channel,
    stage_local,
)
from .checkpoints import CheckpointSync
from .engine import LABEL_JOB, LABEL_RUN, Engine, EngineError
from .layout import (
    Host,
    HostLayout,
    assign_hosts,
    channels_for,
    container_environment,
    s3_client_environment,
    training_job_arn,
)
from .pipes import PipeFeeder, PipeOptions, pipe_feeder
from .s3 import S3Server

__all__ = [
    "DEFAULT_GRACE_S",
    "HostResult",
    "Timeline",
    "TrainingJob",
    "TrainingJobResult",
    "TrainingPlatform",
]

#: StopTrainingJob and MaxRuntimeInSeconds behave like `docker stop -t 120` (contract.md §5).
DEFAULT_GRACE_S = 120.0
OOM_REASON = (
    "OutOfMemoryError: Please use an instance type with more memory, or reduce the size of job data "
    "processed on an instance."
)
LogSink = Callable[[str, str], None]
#: DescribeTrainingJob's FailureReason holds at most 1024 characters.
MAX_FAILURE_REASON = 1024


@dataclass
class Timeline:
    """Wall-clock epoch seconds, comparable with `docker events`."""

    created: float | None = None
    started: float | None = None
    sigterm_sent: float | None = None
    sigkill_sent: float | None = None
    exited: float | None = None
    finished: float | None = None
    process_tree: list[dict[str, str]] = field(default_factory=list)
    #: PID 1's SIGTERM disposition when SIGTERM was sent: "caught", "ignored", "default" or None (unknown).
    pid1_sigterm: str | None = None
    #: The process tree just before SIGKILL (empty when the container exited within the grace).
    process_tree_at_kill: list[dict[str, str]] = field(default_factory=list)

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
            "exited": self.exited,
            "finished": self.finished,
            "seconds_to_exit_after_sigterm": self.seconds_to_exit_after_sigterm,
            "process_tree": self.process_tree,
            "pid1_sigterm": self.pid1_sigterm,
            "process_tree_at_kill": self.process_tree_at_kill,
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
    model_files: list[str] = field(default_factory=list)
    output_files: list[str] = field(default_factory=list)
    channels: list[StagedChannel] = field(default_factory=list)


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
        return out

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.logs.splitlines()[-lines:])

    def model_tar(self) -> bytes:
        """model.tar.gz as uploaded to S3."""
        return self.s3.get_bytes(self.ModelArtifacts["S3ModelArtifacts"])

    def extract_model(self, dest: str | os.PathLike[str]) -> Path:
        """Download model.tar.gz from the platform's S3 and unpack it into `dest`."""
        target = Path(dest)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(self.model_tar()), mode="r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, filter="data")
            else:  # Python < 3.10.12 has no extraction filters; the archive is the platform's own
                tar.extractall(target)
        return target


class _LogBuffer:
    """Lines from every host, in arrival order, waitable by regex."""

    def __init__(self, multi_host: bool, sink: LogSink | None) -> None:
        self._lines: list[str] = []
        self._times: list[float] = []
        self._cond = threading.Condition()
        self._multi = multi_host
        self._sink = sink

    def add(self, host: str, line: str) -> None:
        text = f"[{host}] {line}" if self._multi else line
        with self._cond:
            self._lines.append(text)
            self._times.append(time.time())
            self._cond.notify_all()
        if self._sink is not None:
            self._sink(host, line)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def since(self, when: float) -> list[str]:
        """Lines that arrived at or after `when` (epoch seconds)."""
        with self._cond:
            return [line for line, t in zip(self._lines, self._times, strict=True) if t >= when]

    def wait_for(self, pattern: re.Pattern[str], timeout: float, done: threading.Event) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    match = pattern.search(line)
                    if match:
                        return match
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or done.is_set():
                    return None
                self._cond.wait(min(remaining, 0.25))


class _HostRun:
    def __init__(self, host: Host, index: int, layout: HostLayout) -> None:
        self.host = host
        self.index = index
        self.layout = layout
        self.container_id: str | None = None
        self.start_error: str | None = None
        self.exit_code: int | None = None
        self.exited_at: float | None = None
        self.killed = False
        self.channels: list[StagedChannel] = []
        self.feeders: list[PipeFeeder] = []
        self.log_thread: threading.Thread | None = None

    def stop_feeders(self) -> None:
        for feeder in self.feeders:
            feeder.stop()


class TrainingJob:
    """A running training job (CreateTrainingJob has returned); stop it, wait for it, read its logs."""

    def __init__(
        self,
        platform: TrainingPlatform,
        spec: TrainingJobSpec,
        local_channels: Mapping[str, Path] | None = None,
        gpus: str | None = None,
    ) -> None:
        self.platform = platform
        self.spec = spec
        self.gpus = gpus or platform.gpus
        known = {c.name: c for c in spec.channels}
        self._local = {n: Path(p) for n, p in (local_channels or {}).items() if n in known}
        self._local_direct = {n: p for n, p in self._local.items() if local_staging_allowed(known[n])}
        self._fingerprints: dict[str, tuple[int, int]] = {}
        self.arn = training_job_arn(spec, platform.region)
        self.timeline = Timeline()
        self.secondary_status = "Starting"
        self._suffix = uuid.uuid4().hex[:6]
        self.job_dir = platform.workdir / f"{spec.name}-{self._suffix}"
        hosts = assign_hosts(spec)
        self._hosts = [
            _HostRun(
                h,
                i,
                HostLayout(self.job_dir / h.name, spec.checkpoint.local_path if spec.checkpoint else None),
            )
            for i, h in enumerate(hosts)
        ]
        self._logs = _LogBuffer(len(hosts) > 1, platform.log_sink)
        self._done = threading.Event()
        self._stop_lock = threading.Lock()
        self._stop_reason: str | None = None
        self._client_error: str | None = None
        self._network_id: str | None = None
        self._result: TrainingJobResult | None = None
        self._supervisor: threading.Thread | None = None
        self._kill_timer: threading.Timer | None = None
        self._failure: tuple[str, int | None] | None = None
        self._checkpoints: list[CheckpointSync] = []

    # -- lifecycle ------------------------------------------------------------------------

    def _launch(self) -> None:
        engine = self.platform.engine
        spec = self.spec
        engine.image(spec.image)
        labels = {LABEL_RUN: self.platform.run_id, LABEL_JOB: f"{spec.name}-{self._suffix}"}
        network = self._network(labels)
        env = container_environment(spec, self.platform.region, self.platform.set_region_env)
        if not spec.network_isolation and self.platform.container_s3_endpoint:
            env = {**s3_client_environment(self.platform.container_s3_endpoint, self.platform.region), **env}
        command = ["train"] if spec.entrypoint is None and spec.arguments is None else spec.arguments
        for run in self._hosts:
            run.layout.create()
            run.layout.write_config(spec, run.host)

        def create(run: _HostRun) -> None:
            read_only = tuple(c.name for c in channels_for(spec, run.host) if c.input_mode == "FastFile")
            for name in read_only:
                run.layout.channel_dir(name).mkdir(parents=True, exist_ok=True)
            direct = {n: p for n, p in self._local_direct.items() if n in read_only}
            run.container_id = engine.create(
                image=spec.image,
                name=f"sm-{spec.name[:40]}-{run.host.name}-{self._suffix}",
                hostname=run.host.name,
                entrypoint=spec.entrypoint,
                command=command,
                environment=env,
                binds=run.layout.binds(read_only, direct),
                labels={**labels, "sm-contract.host": run.host.name},
                network=network,
                aliases=(run.host.name,),
                extra=gpu.gpu_plan(run.host.instance_type, self.gpus, self.platform.gpu_detection()).host_config,
            )

        pool = self.platform.pool
        self.secondary_status = "Downloading"
        created = [pool.submit(create, run) for run in self._hosts]
        try:
            self._stage()
        finally:
            for future in created:
                future.result()
        self.timeline.created = time.time()
        if self._client_error is not None:
            return
        if spec.checkpoint is not None:
            for run in self._hosts:
                assert run.layout.checkpoints is not None
                sync = CheckpointSync(
                    self.platform.s3, spec.checkpoint.s3_uri, run.layout.checkpoints, self.platform.checkpoint_sync_s
                )
                sync.restore()
                self._checkpoints.append(sync)
        self.secondary_status = "Training"

        def start(run: _HostRun) -> None:
            assert run.container_id is not None
            for feeder in run.feeders:
                feeder.start()
            started = engine.start(run.container_id)
            if started.error is not None:
                run.stop_feeders()
                run.start_error = started.error
                run.exit_code = 127
                run.exited_at = time.time()
                return
            run.log_thread = threading.Thread(target=self._follow, args=(run,), daemon=True)
            run.log_thread.start()

        if len(self._hosts) == 1:
            start(self._hosts[0])
        else:
            for future in [pool.submit(start, run) for run in self._hosts]:
                future.result()
        self.timeline.started = time.time()
        for sync in self._checkpoints:
            sync.start()

    def _network(self, labels: Mapping[str, str]) -> str | None:
        """Single host: the default bridge, or no network at all under isolation. N hosts: a network of the
        job's own (internal under isolation: peers talk, nothing else is reachable), named hosts as aliases."""
        if len(self._hosts) == 1:
            return "none" if self.spec.network_isolation else self.platform.default_network
        name = f"sm-{self.spec.name[:40]}-{self._suffix}"
        self._network_id = self.platform.engine.create_network(
            name, labels=labels, internal=self.spec.network_isolation
        )
        return name

    def _stage(self) -> None:
        spec = self.spec
        try:
            for name, source in self._local.items():
                channel = next(c for c in spec.channels if c.name == name)
                if name in self._local_direct:
                    if channel.input_mode == "File":
                        self._fingerprints.update(source_fingerprint(source))
                    continue
                self.platform.upload_once(source, channel.s3_uri)
            for run in self._hosts:
                for channel in channels_for(spec, run.host):
                    receivers = [r for r in self._hosts if channel in channels_for(spec, r.host)]
                    if channel.input_mode == "Pipe":
                        run.feeders.append(
                            pipe_feeder(
                                self.platform.s3,
                                channel,
                                run.layout.data,
                                host_index=receivers.index(run),
                                host_count=len(receivers),
                                role_arn=spec.role_arn,
                                region=self.platform.region,
                                options=PipeOptions.from_request(spec.request, channel.name),
                            )
                        )
                        continue
                    local = self._local_direct.get(channel.name)
                    if local is not None:
                        if channel.input_mode == "File" or local.is_file():
                            run.channels.append(stage_local(channel, local, run.layout.channel_dir(channel.name)))
                        continue
                    run.channels.append(
                        stage_channel(
                            self.platform.s3,
                            channel,
                            run.layout.channel_dir(channel.name),
                            host_index=receivers.index(run),
                            host_count=len(receivers),
                            role_arn=spec.role_arn,
                            region=self.platform.region,
                        )
                    )
        except ChannelError as exc:
            self._client_error = str(exc)

    def _follow(self, run: _HostRun) -> None:
        assert run.container_id is not None
        pending = b""
        try:
            for chunk in self.platform.engine.follow_logs(run.container_id):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._logs.add(run.host.name, line.decode("utf-8", "replace").rstrip("\r"))
        except Exception:  # the container was removed under us; the logs end here
            pass
        if pending:
            self._logs.add(run.host.name, pending.decode("utf-8", "replace"))

    def _supervise(self) -> None:
        engine = self.platform.engine
        deadline = (self.timeline.started or time.time()) + self.spec.max_runtime_s
        try:
            pending = [
                r
                for r in self._hosts
                if r.exit_code is None and r.container_id is not None and self._client_error is None
            ]
            while pending:
                for run in list(pending):
                    assert run.container_id is not None
                    left = max(0.05, deadline - time.time()) if self._stop_reason is None else 1.0
                    code = engine.wait(run.container_id, timeout=min(left, 0.2 if len(pending) > 1 else 1.0))
                    if code is None:
                        continue
                    run.exit_code = code
                    run.exited_at = time.time()
                    run.stop_feeders()
                    pending.remove(run)
                    if code != 0 and self._failure is None and self._stop_reason is None:
                        self._failure = (run.host.name, code)
                        for peer in pending:
                            assert peer.container_id is not None
                            engine.kill(peer.container_id, "SIGKILL")
                if pending and time.time() >= deadline and self._stop_reason is None:
                    self.stop(grace=self.platform.grace_s, reason="MaxRuntimeExceeded")
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        for run in self._hosts:
            run.stop_feeders()
        exits = [r.exited_at for r in self._hosts if r.exited_at is not None]
        self.timeline.exited = max(exits) if exits else None
        for run in self._hosts:
            if run.log_thread is not None:
                run.log_thread.join(timeout=5)
        for sync in self._checkpoints:
            with contextlib.suppress(Exception):
                sync.finish()
        try:
            self._result = self._export()
        finally:
            self._done.set()

    def _export(self) -> TrainingJobResult:
        engine = self.platform.engine
        s3 = self.platform.s3
        spec = self.spec
        base = f"{spec.output_path}/{spec.name}/output"
        model_uri = f"{base}/model.tar.gz"
        oom = False
        host_results: list[HostResult] = []
        removals: list[Future[None]] = []
        for run in self._hosts:
            if run.container_id is not None and run.start_error is None and self._client_error is None:
                with contextlib.suppress(Exception):
                    oom = oom or bool(engine.state(run.container_id).get("OOMKilled"))
            if run.container_id is not None and not self.platform.keep:
                removals.append(self.platform.pool.submit(engine.remove, run.container_id))
            host_results.append(
                HostResult(
                    host=run.host.name,
                    container_id=run.container_id,
                    exit_code=run.exit_code,
                    oom_killed=oom,
                    killed=run.killed,
                    start_error=run.start_error,
                    failure_text=run.layout.failure_text(),
                    model_files=_files(run.layout.model),
                    output_files=_files(run.layout.output_data),
                    channels=run.channels,
                )
            )
        self.secondary_status = "Uploading"
        clashes: list[str] = []
        model_files = _pack_and_upload(s3, [r.layout.model for r in self._hosts], model_uri, clashes)
        output_uri: str | None = f"{base}/output.tar.gz"
        output_files = _pack_and_upload(s3, [r.layout.output_data for r in self._hosts], output_uri or "", [])
        if not output_files:
            output_uri = None
        for future in removals:
            with contextlib.suppress(Exception):
                future.result()
        if self._network_id is not None and not self.platform.keep:
            self.platform.engine.remove_network(self._network_id)
        status, secondary, reason, exit_code = self._verdict(host_results, oom)
        warnings = []
        if self._fingerprints:
            changed = sorted(p for p, (size, mtime) in self._fingerprints.items() if _fingerprint(p) != (size, mtime))
            if changed:
                warnings.append(
                    f"the container modified {len(changed)} input file(s) in place ({', '.join(changed[:3])}); "
                    "a local File-mode channel shares its files with your source directory (hard links)"
                )
        self.secondary_status = secondary
        logs = self._logs.text()
        if self.platform.keep:
            job_dir: Path | None = self.job_dir
        else:
            job_dir = None
            shutil.rmtree(self.job_dir, ignore_errors=True)
        self.timeline.finished = time.time()
        return TrainingJobResult(
            TrainingJobName=spec.name,
            TrainingJobArn=self.arn,
            TrainingJobStatus=status,
            SecondaryStatus=secondary,
            FailureReason=reason,
            ModelArtifacts={"S3ModelArtifacts": model_uri},
            exit_code=exit_code,
            hosts=host_results,
            logs=logs,
            timeline=self.timeline,
            model_files=model_files,
            output_files=output_files,
            output_data_uri=output_uri,
            model_clashes=clashes,
            not_simulated=spec.not_simulated,
            checkpoints_restored=sorted({f for s in self._checkpoints for f in s.restored}),
            logs_after_sigterm=self._logs.since(self.timeline.sigterm_sent) if self.timeline.sigterm_sent else [],
            warnings=warnings,
            job_dir=job_dir,
            s3=s3,
        )

    def _verdict(self, hosts: list[HostResult], oom: bool) -> tuple[str, str, str | None, int | None]:
        """TrainingJobStatus, SecondaryStatus, FailureReason and the exit code that decided them (§5, §6)."""
        if self._client_error is not None:
            return "Failed", "Failed", self._client_error, None
        failed: HostResult | None
        if self._failure is not None:
            failed = next(h for h in hosts if h.host == self._failure[0])
        else:
            failed = next((h for h in hosts if h.exit_code not in (0, None)), None)
        if self._stop_reason is not None:
            code = next((h.exit_code for h in hosts if h.exit_code not in (0, None)), hosts[0].exit_code)
            return "Stopped", self._stop_reason, None, code
        if failed is None:
            return "Completed", "Completed", None, 0
        code = failed.exit_code
        if oom and code == 137:
            reason = OOM_REASON
        elif failed.start_error is not None:
            reason = f"AlgorithmError: CannotStartContainerError: {failed.start_error}, exit code: {code}"
        else:
            text = (failed.failure_text or "").strip() or "See job logs for more information"
            suffix = f", exit code: {code}"
            room = MAX_FAILURE_REASON - len("AlgorithmError: ") - len(suffix) - (20 if len(hosts) > 1 else 0)
            reason = f"AlgorithmError: {text[:room]}{suffix}"
        if len(hosts) > 1:
            reason = f"{reason} (host {failed.host})"
        return "Failed", "Failed", reason, code

    # -- public ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def status(self) -> str:
        if self._result is not None:
            return self._result.TrainingJobStatus
        return "Stopping" if self._stop_reason is not None else "InProgress"

    @property
    def container_ids(self) -> list[str]:
        return [r.container_id for r in self._hosts if r.container_id is not None]

    def logs(self) -> str:
        return self._logs.text()

    def ended(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for the job to end (artifacts uploaded); True if it has."""
        return self._done.wait(timeout)

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 60.0) -> re.Match[str] | None:
        """The first log line matching `pattern`, or None if the job ended or `timeout` passed first."""
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        return self._logs.wait_for(compiled, timeout, self._done)

    def stop(self, grace: float = DEFAULT_GRACE_S, reason: str = "Stopped") -> None:
        """StopTrainingJob: SIGTERM to every host's PID 1 now, SIGKILL to those still running after `grace`."""
        with self._stop_lock:
            if self._stop_reason is not None or self._done.is_set():
                return
            self._stop_reason = reason
        engine = self.platform.engine
        running = [r for r in self._hosts if r.container_id is not None and r.exit_code is None]
        if running and running[0].container_id is not None:
            self.timeline.process_tree = engine.top(running[0].container_id)
            self.timeline.pid1_sigterm = engine.pid1_sigterm(running[0].container_id)
        self.timeline.sigterm_sent = time.time()
        self.secondary_status = "Stopping"
        for run in running:
            assert run.container_id is not None
            engine.kill(run.container_id, "SIGTERM")

        deadline = self.timeline.sigterm_sent + grace

        def kill() -> None:
            first = running[0]
            if first.exit_code is None and first.container_id is not None:
                # Look at the processes just before the deadline, so SIGKILL itself goes out on time.
                self.timeline.process_tree_at_kill = engine.top(first.container_id)
            if self._done.wait(max(0.0, deadline - time.time())):
                return
            for run in running:
                if run.exit_code is None and run.container_id is not None:
                    self.timeline.sigkill_sent = self.timeline.sigkill_sent or time.time()
                    if engine.kill(run.container_id, "SIGKILL"):
                        run.killed = True

        self._kill_timer = threading.Timer(max(0.0, grace - 0.5), kill)
        self._kill_timer.daemon = True
        self._kill_timer.start()

    def wait(self, timeout: float | None = None) -> TrainingJobResult:
        """Block until the job has ended and its artifacts are uploaded."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"training job {self.spec.name} still {self.status} after {timeout} s")
        assert self._result is not None
        return self._result

    def exec(self, cmd: list[str], host: str = "algo-1") -> tuple[int, str]:
        run = next(r for r in self._hosts if r.host.name == host)
        if run.container_id is None:
            raise EngineError(f"host {host} has no container")
        return self.platform.engine.exec(run.container_id, cmd)

    def __enter__(self) -> TrainingJob:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done.is_set():
            self.stop(grace=min(self.platform.grace_s, 10.0))
        self._done.wait()


class TrainingPlatform:
    """The local SageMaker training platform: an engine, an S3, a work directory, one run id."""

    def __init__(
        self,
        engine: Engine,
        s3: S3Server,
        workdir: Path,
        *,
        run_id: str | None = None,
        region: str = "us-east-1",
        set_region_env: bool = True,
        keep: bool = False,
        grace_s: float = DEFAULT_GRACE_S,
        log_sink: LogSink | None = None,
        checkpoint_sync_s: float = 1.0,
        default_network: str | None = None,
        container_s3_endpoint: str | None = None,
        gpus: str = "auto",
    ) -> None:
        self.engine = engine
        self.s3 = s3
        self.workdir = workdir
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.region = region
        self.set_region_env = set_region_env
        self.keep = keep
        self.grace_s = grace_s
        self.log_sink = log_sink
        self.checkpoint_sync_s = checkpoint_sync_s
        self.default_network = default_network
        self.container_s3_endpoint = container_s3_endpoint
        self.gpus = gpus
        self._gpu_detection: gpu.GpuDetection | None = None
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sm-platform")
        self._uploaded: set[tuple[str, str]] = set()
        self._upload_lock = threading.Lock()
        workdir.mkdir(parents=True, exist_ok=True)

    def gpu_detection(self) -> gpu.GpuDetection:
        """What this engine and host can give containers in GPUs (read once per platform)."""
        if self._gpu_detection is None:
            self._gpu_detection = gpu.detect(self.engine.client.info())
        return self._gpu_detection

    def upload_once(self, source: Path, uri: str) -> None:
        """Put a local file or directory under `uri` in the platform's S3, once per (source, uri)."""
        key = (str(source.resolve()), uri)
        with self._upload_lock:
            if key in self._uploaded:
                return
            self.s3.upload_path(source, uri)
            self._uploaded.add(key)

    def start(
        self, spec: TrainingJobSpec, local_channels: Mapping[str, Path] | None = None, gpus: str | None = None
    ) -> TrainingJob:
        """CreateTrainingJob: returns once every host's container has started (or failed to).

        `local_channels` maps channel names to local files or directories that stand in for the channel's
        S3 data: staged without a copy where the channel's semantics allow (FullyReplicated S3Prefix in
        File or FastFile mode), else uploaded to the channel's S3 URI first, so the S3 path is exercised.
        `gpus` (auto|all|none|devices) overrides the platform's GPU mode for this job.
        """
        job = TrainingJob(self, spec, local_channels, gpus)
        try:
            job._launch()
        except BaseException:
            job._finish()
            raise
        job._supervisor = threading.Thread(target=job._supervise, name=f"sm-job-{spec.name}", daemon=True)
        job._supervisor.start()
        return job

    def run(
        self, spec: TrainingJobSpec, timeout: float | None = None, local_channels: Mapping[str, Path] | None = None
    ) -> TrainingJobResult:
        return self.start(spec, local_channels).wait(timeout)

    def close(self) -> int:
        """Remove whatever this run left behind (unless keeping); the number of leftovers removed."""
        removed = 0 if self.keep else self.engine.sweep(self.run_id)
        self.pool.shutdown(wait=True)
        return removed


def _fingerprint(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _files(root: Path) -> list[str]:
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


def _pack_and_upload(s3: S3Server, roots: list[Path], uri: str, clashes: list[str]) -> list[str]:
    """Merge `roots` into one tar.gz at `uri` (the first host wins a clash, which is recorded).

    A clash is a file name two hosts wrote with different contents; identical copies (every host of
    a data-parallel job saving the same weights) lose nothing and are not reported.

    An empty first root still yields an (empty) model.tar.gz, as SageMaker uploads one; other
    archives are only written when they hold files.
    """
    seen: dict[str, tuple[int, Path]] = {}
    entries: list[tuple[Path, str]] = []
    for i, root in enumerate(roots):
        if not root.is_dir():
            continue
        for path, name in _walk_entries(root):
            if name in seen:
                first_host, first = seen[name]
                if first_host != i and not path.is_dir() and not filecmp.cmp(first, path, shallow=False):
                    clashes.append(name)
                continue
            seen[name] = (i, path)
            entries.append((path, name))
    files = sorted(name for path, name in entries if not path.is_dir())
    if not files and not uri.endswith("/model.tar.gz"):
        return []
    archive = roots[0].parent / f".{Path(uri).name}"
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for path, name in entries:
            tar.add(path, arcname=name, recursive=False)
    s3.upload_file(archive, uri)
    archive.unlink()
    return files
