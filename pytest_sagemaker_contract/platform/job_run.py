"""Stage 3 of a training job, run: network and containers created, started, followed, supervised, stopped.

The containers are created as `docker run` would (no init, the image's entrypoint semantics), with the
mounts the job's `DataPath` gives them. The supervisor waits for every host's exit, reads an exit it did
not cause as the engine's or someone else's fault, kills the peers of a failed host (contract §7) and
enforces MaxRuntimeInSeconds; `request_stop` is StopTrainingJob: SIGTERM now, SIGKILL after the grace.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from .credentials import CredentialsEndpoint, credentials_endpoint, start_credentials_pod
from .engine import Engine, EngineError, NotFound
from .gpu import gpu_plan
from .instances import engine_capacity, resource_plan
from .job_plan import HostRun, JobContext, JobState
from .layout import channels_for, container_environment, instance_hostname, s3_client_environment
from .logs import MAX_LINE_BYTES, LogBuffer
from .spot import Deadline, next_deadline

__all__ = [
    "ENGINE_PATIENCE_S",
    "FOLLOWER_PATIENCE_S",
    "Supervisor",
    "create_containers",
    "create_network",
    "follow_log",
    "job_environment",
    "join_follower",
    "outside_kill",
    "request_interrupt",
    "request_stop",
    "start_hosts",
]

#: How long the engine may stay unreachable before the job fails with an engine fault.
ENGINE_PATIENCE_S = 10.0
#: How long a log stream may go without a new line, once the container exited, before the job stops waiting.
FOLLOWER_PATIENCE_S = 5.0


def create_network(ctx: JobContext) -> str | None:
    """Every job gets a network of its own with the hosts' algo names as aliases (one host included: its
    host name is the instance's, not algo-1, contract §7), internal under isolation: every host resolves
    its own name and its peers' (§9: the training toolkit resolves them before it starts the user code),
    and under isolation nothing else is reachable, not the platform's S3, the host or the outside."""
    spec, platform = ctx.plan.spec, ctx.platform
    if len(ctx.plan.hosts) == 1 and not platform.keep and not spec.network_isolation:
        credentials = job_credentials(ctx, "slot")
        if credentials is not None:  # the network and pod the last such job handed on (slots.py)
            slot = platform.slots.take(credentials[1], credentials[0], platform.leave_network)
            ctx.state.slot, ctx.state.network_name = slot, slot.network
            return slot.network
    name = f"sm-{spec.name[:40]}-{ctx.plan.suffix}"
    ctx.state.network_name = name
    ctx.state.network_id = ctx.platform.engine.create_network(
        name, labels=ctx.plan.labels, internal=spec.network_isolation
    )
    return name


def job_environment(ctx: JobContext, network: str | None) -> dict[str, str]:
    """The containers' environment, with the session's S3 where the network reaches it (not under isolation)."""
    platform, spec = ctx.platform, ctx.plan.spec
    env = container_environment(spec, platform.region, platform.set_region_env)
    endpoint = None if spec.network_isolation else platform.container_s3_url(network)
    if endpoint:
        env = {**s3_client_environment(endpoint), **env}
    credentials = job_credentials(ctx, network)
    if credentials is not None:
        env = {**credentials[0].environment(), **env}
    return env


def job_credentials(ctx: JobContext, network: str | None) -> tuple[CredentialsEndpoint, str] | None:
    """The role's credentials endpoint and the pod image serving it (contract §11), once per job; None under
    network isolation (no credentials inside, §9) or where the helper image cannot be had (with a warning)."""
    if ctx.plan.spec.network_isolation or network in (None, "none"):
        return None
    if ctx.state.credentials is None:
        image, why = ctx.platform.helper_image()
        if image is None:
            ctx.state.log_warnings.append(f"no container credentials endpoint (contract §11): {why}")
            return None
        keys = ctx.platform.s3.keys
        endpoint = credentials_endpoint(keys.access_key_id, keys.secret_access_key, ctx.plan.spec.role_arn, time.time())
        ctx.state.credentials = (endpoint, image)
    return ctx.state.credentials


def create_containers(ctx: JobContext, network: str | None, env: dict[str, str]) -> list[Future[None]]:
    """Every host's container created on the platform's pool (while staging goes on); their futures."""
    return [ctx.platform.pool.submit(_create, ctx, run, network, env) for run in ctx.plan.hosts]


def _create(ctx: JobContext, run: HostRun, network: str | None, env: dict[str, str]) -> None:
    platform, spec = ctx.platform, ctx.plan.spec
    engine = platform.engine
    read_only = tuple(c.name for c in channels_for(spec, run.host) if c.input_mode == "FastFile")
    for name in read_only:
        run.layout.channel_dir(name).mkdir(parents=True, exist_ok=True)
    binds, mounts = ctx.data.mounts(run, read_only)
    instance_type = run.host.instance_type
    hostname: str | None = instance_hostname(ctx.plan.suffix, run.index)
    aliases: tuple[str, ...] = (run.host.name, instance_hostname(ctx.plan.suffix, run.index))
    joined = network
    credentials = job_credentials(ctx, network)
    if ctx.state.slot is not None:  # the slot's pod already holds the host's name, network and endpoint
        hostname, aliases, joined = None, (), f"container:{ctx.state.slot.pod}"
    elif credentials is not None and network is not None:  # the host's name and network are its pod's
        pod = start_credentials_pod(
            engine,
            credentials[1],
            name=f"{run.name}-pod",
            hostname=str(hostname),
            network=network,
            aliases=aliases,
            labels={**ctx.plan.labels, "sm-contract.host": run.host.name},
            endpoint=credentials[0],
        )
        ctx.state.pods.append(pod)
        hostname, aliases, joined = None, (), f"container:{pod}"
    run.container_id = engine.create(
        image=spec.image,
        name=run.name,
        hostname=hostname,
        entrypoint=spec.entrypoint,
        command=ctx.plan.command,
        environment=env,
        binds=binds,
        mounts=mounts,
        labels={**ctx.plan.labels, "sm-contract.host": run.host.name},
        network=joined,
        aliases=aliases,
        extra={
            **gpu_plan(instance_type, ctx.plan.gpus, platform.gpu_detection()).host_config,
            # The instance type's vCPUs and memory (capped at the host's); `resource_limits` False: none.
            **resource_plan(instance_type, *engine_capacity(engine), enabled=platform.resource_limits).host_config,
        },
    )


def start_hosts(ctx: JobContext) -> None:
    """Start every host (feeders first, so a FIFO has its writer), each with its log follower."""

    def start(run: HostRun) -> None:
        assert run.container_id is not None
        for feeder in run.feeders:
            feeder.start()
        started = ctx.platform.engine.start(run.container_id)
        if started.error is not None:
            run.stop_feeders()
            run.start_error = started.error
            run.exit_code = 127
            run.exited_at = time.time()
            return
        run.log_thread = threading.Thread(target=follow_log, args=(ctx.platform.engine, run, ctx.logs), daemon=True)
        run.log_thread.start()

    hosts = ctx.plan.hosts
    if len(hosts) == 1:
        start(hosts[0])
    else:
        for future in [ctx.platform.pool.submit(start, run) for run in hosts]:
            future.result()


def follow_log(engine: Engine, run: HostRun, logs: LogBuffer) -> None:
    """One host's log stream into the job's buffer, line by line, until the container's output ends."""
    assert run.container_id is not None
    pending = b""
    host = run.host.name
    try:
        for chunk in engine.follow_logs(run.container_id):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > MAX_LINE_BYTES:  # one endless line: split it rather than hold it all
                lines.append(pending)
                pending = b""
            if lines:
                logs.add_many(host, [line.decode("utf-8", "replace").rstrip("\r") for line in lines])
    except Exception as exc:  # the stream broke off: say so rather than end the log silently
        run.log_error = f"{type(exc).__name__}: {exc}"
    if pending:
        logs.add(host, pending.decode("utf-8", "replace"))


def join_follower(ctx: JobContext, run: HostRun) -> None:
    """Wait for a host's log stream to drain: as long as lines keep coming, so a big log is complete."""
    thread = run.log_thread
    if thread is None:
        return
    seen = -1
    while thread.is_alive():
        count = ctx.logs.count
        if count == seen:
            ctx.state.log_warnings.append(
                f"the log stream of {run.host.name} stalled for {FOLLOWER_PATIENCE_S:g} s after the container "
                f"exited; the log may end early (see `docker logs {run.name}` if the container is kept)"
            )
            return
        seen = count
        thread.join(timeout=FOLLOWER_PATIENCE_S)


def outside_kill(engine: Engine, run: HostRun, code: int, phase: str) -> str | None:
    """A sentence when the container that just exited (with `code`, during `phase`) was removed or SIGKILLed
    by someone else."""
    assert run.container_id is not None
    removed = f"container {run.name} was removed from outside the platform (docker rm -f?) while {phase}"
    try:
        state = engine.state(run.container_id)
    except NotFound:
        return removed
    except Exception:
        state = {}
    if state.get("Status") in ("removing", "dead"):
        return removed
    if code == 137 and not run.sigkill_sent and not state.get("OOMKilled"):
        return (
            f"container {run.name} was killed with SIGKILL from outside the platform (docker kill, docker rm -f "
            f"or the host's OOM killer?) while {phase}: exit code 137, but the platform sent no "
            "SIGKILL and the engine reports no OOM kill"
        )
    return None


class Supervisor:
    """Waits for every host's exit; a failed host's peers are killed; MaxRuntimeInSeconds (and a spot job's
    MaxWaitTimeInSeconds) stops the job."""

    def __init__(self, ctx: JobContext, stop: Callable[[float, str], None]) -> None:
        self.ctx = ctx
        self.engine = ctx.platform.engine
        self.state: JobState = ctx.state
        self._stop = stop
        self._unreachable_since: float | None = None

    def deadline(self) -> Deadline:
        """This attempt's deadline: what is left of MaxRuntimeInSeconds, or a spot job's MaxWaitTimeInSeconds."""
        state, spec = self.state, self.ctx.plan.spec
        return next_deadline(
            created=state.created_at,
            started=state.timeline.started or time.time(),
            trained_s=state.trained_s,
            max_runtime_s=spec.max_runtime_s,
            max_wait_s=spec.max_wait_s,
        )

    def run(self) -> None:
        state = self.state
        limit = self.deadline()
        deadline = limit.at
        pending = [
            r
            for r in self.ctx.plan.hosts
            if r.exit_code is None and r.container_id is not None and state.client_error is None
        ]
        while pending:
            for run in list(pending):
                if self._exited(run, deadline, len(pending)):
                    pending.remove(run)
                    self._after_exit(run, pending)
            if pending and time.time() >= deadline and state.stop_reason is None:
                self._stop(self.ctx.platform.grace_s, limit.reason)

    def _exited(self, run: HostRun, deadline: float, waiting: int) -> bool:
        """Wait a moment for `run`'s exit; True once it exited (or is gone), with its exit code recorded."""
        assert run.container_id is not None
        state = self.state
        left = max(0.05, deadline - time.time()) if state.stop_reason is None else 1.0
        try:
            code = self.engine.wait_or_raise(run.container_id, timeout=min(left, 0.2 if waiting > 1 else 1.0))
        except NotFound:
            code = None
            run.engine_fault = (
                f"container {run.name} was removed from outside the platform (docker rm?) while {state.phase()}"
            )
        except EngineError as exc:
            self._unreachable_since = self._unreachable_since or time.monotonic()
            if time.monotonic() - self._unreachable_since < ENGINE_PATIENCE_S:
                state.done.wait(0.5)
                return False
            code = None
            run.engine_fault = (
                f"the Docker engine stopped answering for {ENGINE_PATIENCE_S:g} s while waiting for "
                f"container {run.name} ({state.phase()}): {exc}"
            )
        else:
            self._unreachable_since = None
            if code is None:
                return False
            run.engine_fault = outside_kill(self.engine, run, code, state.phase())
        run.exit_code = code
        run.exited_at = time.time()
        run.stop_feeders()
        return True

    def _after_exit(self, run: HostRun, pending: list[HostRun]) -> None:
        """A host that failed (or was lost) first ends the job: its peers are killed (contract §7)."""
        state = self.state
        if run.engine_fault is None and (
            run.exit_code == 0 or state.failure is not None or state.stop_reason is not None or state.interrupting
        ):
            return
        if state.failure is None:
            state.failure = (run.host.name, run.exit_code)
        for peer in pending:
            assert peer.container_id is not None
            peer.sigkill_sent = True
            with contextlib.suppress(Exception):
                self.engine.kill(peer.container_id, "SIGKILL")


def request_stop(ctx: JobContext, grace: float, reason: str) -> None:
    """StopTrainingJob: SIGTERM to every host's PID 1 now, SIGKILL to those still running after `grace`.

    The processes and their SIGTERM dispositions are read first: the stop checks judge by them whether
    SIGTERM acted (contract §5)."""
    state = ctx.state
    with state.stop_lock:
        if state.stop_reason is not None or state.done.is_set():
            return
        state.stop_reason = reason
    timeline = state.timeline
    timeline.stop_requested = time.time()
    engine = ctx.platform.engine
    running = [r for r in ctx.plan.hosts if r.container_id is not None and r.exit_code is None]
    if running and running[0].container_id is not None:
        timeline.process_tree = engine.top(running[0].container_id)
        signals = engine.signal_dispositions(running[0].container_id, timeline.process_tree)
        timeline.signals_at_sigterm = signals
        pid1 = next((p for p in signals if p.pid == 1), None)
        timeline.pid1_sigterm = pid1.sigterm if pid1 is not None else None
    state.enter("Stopping", "Stopping the training job")
    _terminate(ctx, running, grace)


def request_interrupt(ctx: JobContext, grace: float) -> bool:
    """A managed spot interruption: SIGTERM to every host's PID 1 now, SIGKILL after `grace`, then the job restarts
    (job_restart.py). False when the job is already stopping, being interrupted or over."""
    state = ctx.state
    running = [r for r in ctx.plan.hosts if r.container_id is not None and r.exit_code is None]
    with state.stop_lock:
        if state.stop_reason is not None or state.interrupting or state.done.is_set() or not running:
            return False
        state.interrupting = True
    state.timeline.stop_requested = time.time()
    state.enter("Interrupted", "The managed spot training instances were interrupted")
    _terminate(ctx, running, grace)
    return True


def _terminate(ctx: JobContext, running: list[HostRun], grace: float) -> None:
    """SIGTERM to `running` now, SIGKILL to those still running after `grace`."""
    state, engine = ctx.state, ctx.platform.engine
    timeline = state.timeline
    timeline.sigterm_sent = time.time()
    for run in running:
        assert run.container_id is not None
        engine.kill(run.container_id, "SIGTERM")
    deadline = timeline.sigterm_sent + grace
    state.kill_due = timeline.kill_due = deadline
    state.kill_timer = threading.Timer(max(0.0, grace - 0.5), _kill_at, args=(ctx, running, deadline))
    state.kill_timer.daemon = True
    state.kill_timer.start()


def _kill_at(ctx: JobContext, running: list[HostRun], deadline: float) -> None:
    """Just before the deadline: the processes looked at (so SIGKILL itself goes out on time), then SIGKILL to
    every host still running at it."""
    state, engine = ctx.state, ctx.platform.engine
    first = running[0]
    if first.exit_code is None and first.container_id is not None:
        state.timeline.process_tree_at_kill = engine.top(first.container_id)
    if state.done.wait(max(0.0, deadline - time.time())):
        return
    with state.kill_lock:  # the end of the job waits for this, so the result knows which hosts were killed
        for run in running:
            if run.exit_code is None and run.container_id is not None:
                state.timeline.sigkill_sent = state.timeline.sigkill_sent or time.time()
                run.sigkill_sent = True
                if engine.kill(run.container_id, "SIGKILL"):
                    run.killed = True
