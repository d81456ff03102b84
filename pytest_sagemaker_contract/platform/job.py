"""One training job across N hosts, start to end, as a pipeline: plan → stage → run → collect → verdict.

`TrainingJob` is the handle CreateTrainingJob returns (stop, wait, logs, exec); it drives the stages,
each in a module of its own (docs/architecture.md): job_plan.py (names, layout, records), job_stage.py
(channels, feeders, checkpoints), job_run.py (containers, supervision, stop), job_collect.py (artifacts,
cleanup, and the verdict from `result.decide_job_status`). How /opt/ml reaches the containers is the job's
data path strategy, chosen once (job_data.py).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import PlatformError
from ..spec import TrainingJobSpec
from .engine import EngineError
from .interference import InterferenceWatcher
from .job_collect import collect, fault_result, wind_down
from .job_data import choose_job_data_path
from .job_plan import JobContext, JobState, plan_job
from .job_restart import arm_witness, begin_restart, note_reads, restart_due
from .job_run import (
    Supervisor,
    create_containers,
    create_network,
    job_environment,
    request_interrupt,
    request_stop,
    start_hosts,
)
from .job_stage import restore_checkpoints, stage_inputs
from .logs import LogBuffer
from .resources import DEFAULT_GRACE_S, PlatformCore
from .result import Restart, Timeline, TrainingJobResult

__all__ = ["DEFAULT_GRACE_S", "TrainingJob"]


class TrainingJob:
    """A running training job (CreateTrainingJob has returned); stop it, wait for it, read its logs."""

    def __init__(
        self,
        platform: PlatformCore,
        spec: TrainingJobSpec,
        local_channels: Mapping[str, Path] | None = None,
        gpus: str | None = None,
    ) -> None:
        if any(c.input_mode == "Pipe" for c in spec.channels):
            supported, why = platform.pipe_support()
            if not supported:
                raise EngineError(why)
        self.platform = platform
        self.spec = spec
        plan = plan_job(platform, spec, local_channels, gpus)
        logs = LogBuffer(len(plan.hosts) > 1, platform.log_sink, plan.log_path)
        self._ctx = JobContext(platform, plan, JobState(), choose_job_data_path(platform, plan), logs)
        self._result: TrainingJobResult | None = None
        self._supervisor: threading.Thread | None = None

    @classmethod
    def launch(
        cls,
        platform: PlatformCore,
        spec: TrainingJobSpec,
        local_channels: Mapping[str, Path] | None = None,
        gpus: str | None = None,
    ) -> TrainingJob:
        """CreateTrainingJob on `platform`: returns once every host's container has started (or failed to)."""
        job = cls(platform, spec, local_channels, gpus)
        try:
            job._launch()
        except BaseException:
            job._finish()
            raise
        job._supervisor = threading.Thread(target=job._supervise, name=f"sm-job-{spec.name}", daemon=True)
        job._supervisor.start()
        return job

    # -- the pipeline ---------------------------------------------------------------------

    def _launch(self) -> None:
        """Plan (done in __init__), then stage while the containers are created, then run."""
        ctx = self._ctx
        plan = ctx.plan
        ctx.platform.engine.image(plan.spec.image)
        network = create_network(ctx)
        for run in plan.hosts:
            run.layout.create()
            run.layout.write_config(plan.spec, run.host)
        self._attempt(network)

    def _attempt(self, network: str | None) -> bool:
        """One attempt on the job's network: containers created while inputs are staged, checkpoints restored,
        started; False when they were not started. A restart within the job runs it again with fresh containers
        (job_restart.py)."""
        ctx = self._ctx
        plan, state = ctx.plan, ctx.state
        env = job_environment(ctx, network)
        ctx.data.prepare()
        state.enter("Downloading", "Downloading input data")
        created = create_containers(ctx, network, env)
        try:
            stage_inputs(ctx)
        finally:
            for future in created:
                future.result()
        state.timeline.created = time.time()
        if state.client_error is not None:
            return False
        restore_checkpoints(ctx)
        arm_witness(ctx)
        ctx.data.before_start()
        if state.stop_reason is not None:  # StopTrainingJob while a restart was being prepared: no new start
            return False
        state.enter("Training", "Training image download completed. Training in progress.")
        names = {r.container_id: r.name for r in plan.hosts if r.container_id}
        state.interference = InterferenceWatcher(ctx.platform.engine, names)
        start_hosts(ctx)
        state.timeline.started = time.time()
        for sync in state.checkpoints:
            sync.start()
        return True

    def _supervise(self) -> None:
        try:
            while True:
                Supervisor(self._ctx, lambda grace, reason: self.stop(grace=grace, reason=reason)).run()
                if not self._restarted():
                    break
        finally:
            self._finish()

    def _restarted(self) -> bool:
        """The attempt is over: wind it down; restart the job in new containers when it is due (a managed spot
        interruption, a RetryStrategy retry). A restart the engine refuses is the job's engine fault."""
        ctx = self._ctx
        note_reads(ctx)
        wind_down(ctx)
        cause = restart_due(ctx)
        if cause is None or not begin_restart(ctx, cause):
            return False
        try:
            return self._attempt(ctx.state.network_name or None)
        except Exception as exc:
            for run in ctx.plan.hosts:
                run.engine_fault = run.engine_fault or f"the restart after {cause} failed ({type(exc).__name__}: {exc})"
            return False

    def _finish(self) -> None:
        try:
            try:
                note_reads(self._ctx)
                wind_down(self._ctx)
                self._result = collect(self._ctx)
            except Exception as exc:
                self._result = fault_result(self._ctx, exc)
        finally:
            self._ctx.state.done.set()

    # -- public ---------------------------------------------------------------------------

    @property
    def arn(self) -> str:
        return self._ctx.plan.arn

    @property
    def gpus(self) -> str:
        return self._ctx.plan.gpus

    @property
    def job_dir(self) -> Path:
        return self._ctx.plan.job_dir

    @property
    def timeline(self) -> Timeline:
        return self._ctx.state.timeline

    @property
    def secondary_status(self) -> str:
        return self._ctx.state.secondary_status

    @property
    def attempt(self) -> int:
        """The attempt running now: 1, plus one per restart within the job."""
        return self._ctx.state.attempt

    @property
    def restarts(self) -> list[Restart]:
        return list(self._ctx.state.restarts)

    def secondary_status_transitions(self) -> list[dict[str, object]]:
        """DescribeTrainingJob's SecondaryStatusTransitions so far."""
        return self._ctx.state.transitions.as_list()

    @property
    def kill_due(self) -> float | None:
        """When SIGKILL is due (epoch seconds) once a stop was requested."""
        return self._ctx.state.kill_due

    @property
    def done(self) -> bool:
        return self._ctx.state.done.is_set()

    @property
    def status(self) -> str:
        if self._result is not None:
            return self._result.TrainingJobStatus
        return "Stopping" if self._ctx.state.stop_reason is not None else "InProgress"

    @property
    def container_ids(self) -> list[str]:
        return [r.container_id for r in self._ctx.plan.hosts if r.container_id is not None]

    def logs(self) -> str:
        return self._ctx.logs.text()

    def last_log_line(self) -> str:
        """The newest log line (for progress displays); empty before the first."""
        tail = self._ctx.logs.tail(1)
        return tail[0] if tail else ""

    def ended(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for the job to end (artifacts uploaded); True if it has."""
        return self._ctx.state.done.wait(timeout)

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 60.0) -> re.Match[str] | None:
        """The first log line matching `pattern`, or None if the job ended or `timeout` passed first."""
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        return self._ctx.logs.wait_for(compiled, timeout, self._ctx.state.done)

    def stop(self, grace: float = DEFAULT_GRACE_S, reason: str = "Stopped") -> None:
        """StopTrainingJob: SIGTERM to every host's PID 1 now, SIGKILL to those still running after `grace`."""
        request_stop(self._ctx, grace, reason)

    def interrupt(self, grace: float = DEFAULT_GRACE_S) -> bool:
        """A managed spot interruption (the instances reclaimed): SIGTERM to every host's PID 1 now, SIGKILL after
        `grace`, checkpoints synced up; then the same job restarts in fresh containers with its input and
        checkpoints downloaded again (contract §11). False when the job is stopping, already being interrupted,
        or over."""
        if not self.spec.managed_spot:
            raise PlatformError(
                f"training job {self.spec.name} is not a managed spot job: only EnableManagedSpotTraining jobs are "
                "interrupted; set it (with StoppingCondition.MaxWaitTimeInSeconds) to simulate a spot interruption"
            )
        return request_interrupt(self._ctx, grace)

    def wait(self, timeout: float | None = None) -> TrainingJobResult:
        """Block until the job has ended and its artifacts are uploaded."""
        if not self._ctx.state.done.wait(timeout):
            raise TimeoutError(f"training job {self.spec.name} still {self.status} after {timeout} s")
        assert self._result is not None
        return self._result

    def exec(self, cmd: list[str], host: str = "algo-1") -> tuple[int, str]:
        run = next(r for r in self._ctx.plan.hosts if r.host.name == host)
        if run.container_id is None:
            raise EngineError(f"host {host} has no container")
        return self.platform.engine.exec(run.container_id, cmd)

    def __enter__(self) -> TrainingJob:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._ctx.state.done.is_set():
            self.stop(grace=min(self.platform.grace_s, 10.0))
        self._ctx.state.done.wait()
