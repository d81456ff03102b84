"""One training job across N hosts, start to end: stage, start, stop, wait, collect.

The result model and its verdict rules are in `result.py`, log capture in `logs.py`, archive packing
in `artifacts.py`, the session's shared resources in `resources.py`; this module is the lifecycle
that drives them.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path

from ..spec import TrainingJobSpec
from .artifacts import list_files, modified_inputs, pack_and_upload
from .channels import (
    ChannelError,
    StagedChannel,
    describe_local,
    local_staging_allowed,
    source_fingerprint,
    stage_channel,
    stage_local,
)
from .checkpoints import CheckpointSync
from .credentials import CredentialsEndpoint, credentials_endpoint, start_credentials_pod
from .data_path import (
    ENGINE,
    ArchiveMeta,
    collect_dir,
    engine_mounts,
    fill_volume,
    overlay_mount,
    put_input,
    remove_tree,
    replace_dir,
)
from .engine import LABEL_JOB, LABEL_RUN, EngineError, MountSpec, NotFound
from .gpu import gpu_plan
from .instances import engine_capacity, resource_plan
from .interference import InterferenceWatcher
from .layout import (
    OPT_ML,
    Host,
    HostLayout,
    assign_hosts,
    channels_for,
    container_environment,
    instance_hostname,
    s3_client_environment,
    training_job_arn,
)
from .logs import MAX_LINE_BYTES, LogBuffer, durable_log_dir
from .pipes import EngineFifoFeeder, PipeFeeder, PipeOptions, pipe_feeder
from .resources import DEFAULT_GRACE_S, PlatformResources
from .result import HostResult, Timeline, TrainingJobResult, decide_verdict
from .volume import input_disk_error

__all__ = ["DEFAULT_GRACE_S", "TrainingJob"]

#: How long the engine may stay unreachable before the job fails with an engine fault.
ENGINE_PATIENCE_S = 10.0
#: How long a log stream may go without a new line, once the container exited, before the job stops waiting.
FOLLOWER_PATIENCE_S = 5.0


def _tar_as_is(source: Path) -> bool:
    """A local directory whose tree can go into the input archive as it is: no links (S3 has none, so a
    channel gets their targets' bytes, which `stage_local` copies) and nothing but files and directories."""
    if not source.is_dir():
        return False
    return all((p.is_file() or p.is_dir()) and not p.is_symlink() for p in source.rglob("*"))


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
        #: The platform sent (or is sending) SIGKILL: a 137 then is the platform's doing.
        self.sigkill_sent = False
        #: A sentence when the container was removed or killed from outside, or the engine went away.
        self.engine_fault: str | None = None
        #: Why the log stream broke off, when it did with an error.
        self.log_error: str | None = None
        self.name = ""
        self.channels: list[StagedChannel] = []
        self.feeders: list[PipeFeeder] = []
        #: Engine data path: FastFile channel -> the volume mounted read-only at its directory.
        self.fast_volumes: dict[str, str] = {}
        #: Bind path: local File-mode channel -> the copy-on-write overlay mounted at its directory.
        self.overlays: dict[str, MountSpec] = {}
        #: Engine data path: File channels read from the user's directory straight into the input archive.
        self.direct_sources: dict[str, Path] = {}
        #: Engine data path with Pipe channels: the helper container that feeds their FIFOs.
        self.helper_id: str | None = None
        self.log_thread: threading.Thread | None = None

    def stop_feeders(self) -> None:
        for feeder in self.feeders:
            feeder.stop()


class TrainingJob:
    """A running training job (CreateTrainingJob has returned); stop it, wait for it, read its logs."""

    def __init__(
        self,
        platform: PlatformResources,
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
        try:
            log_path = durable_log_dir(platform.run_id) / f"{self.job_dir.name}.log"
        except OSError:
            log_path = self.job_dir / "job.log"
        self._logs = LogBuffer(len(hosts) > 1, platform.log_sink, log_path)
        self._log_warnings: list[str] = []
        self._done = threading.Event()
        self._stop_lock = threading.Lock()
        self._stop_reason: str | None = None
        self._kill_lock = threading.Lock()
        #: When SIGKILL is due (epoch seconds) once a stop was requested.
        self.kill_due: float | None = None
        self._client_error: str | None = None
        self._network_id: str | None = None
        self._network_name = ""
        self._result: TrainingJobResult | None = None
        self._supervisor: threading.Thread | None = None
        self._kill_timer: threading.Timer | None = None
        self._failure: tuple[str, int | None] | None = None
        self._checkpoints: list[CheckpointSync] = []
        #: /opt/ml moves through the Docker API (volumes, archives) rather than bind mounts (data_path.py).
        self._engine_path = platform.data_path == ENGINE
        self._volumes: list[str] = []
        #: Engine data path: the real mode and owner of every collected artifact, for packing them intact.
        self._meta: ArchiveMeta = {}
        self._helpers: list[str] = []
        #: Watches the engine's events for what someone else does to the containers (docker kill, pause…).
        self._interference: InterferenceWatcher | None = None

    @classmethod
    def launch(
        cls,
        platform: PlatformResources,
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

    # -- lifecycle ------------------------------------------------------------------------

    def _launch(self) -> None:
        engine = self.platform.engine
        spec = self.spec
        engine.image(spec.image)
        labels = {LABEL_RUN: self.platform.run_id, LABEL_JOB: f"{spec.name}-{self._suffix}"}
        network = self._network(labels)
        env = container_environment(spec, self.platform.region, self.platform.set_region_env)
        endpoint = None if spec.network_isolation else self.platform.container_s3_url(network)
        if endpoint:
            env = {**s3_client_environment(endpoint), **env}
        credentials = self._credentials(network)
        if credentials is not None:
            env = {**credentials[0].environment(), **env}
        command = ["train"] if spec.entrypoint is None and spec.arguments is None else spec.arguments
        for run in self._hosts:
            run.layout.create()
            run.layout.write_config(spec, run.host)

        if not self._engine_path:
            for run in self._hosts:
                for channel in channels_for(spec, run.host):
                    source = self._local_direct.get(channel.name)
                    if channel.input_mode != "File" or source is None or not source.is_dir():
                        continue
                    if any(path.is_symlink() for path in source.rglob("*")):
                        continue  # S3 has no links: the channel gets the targets' bytes (a copy), not dangling links
                    if not self.platform.overlay_support(spec.image)[0]:
                        break
                    scratch = self.job_dir / f"{run.host.name}.overlay" / channel.name
                    mount = overlay_mount(source, scratch, f"{OPT_ML}/input/data/{channel.name}")
                    if mount is not None:
                        run.layout.channel_dir(channel.name).mkdir(parents=True, exist_ok=True)
                        run.overlays[channel.name] = mount

        def create(run: _HostRun) -> None:
            read_only = tuple(c.name for c in channels_for(spec, run.host) if c.input_mode == "FastFile")
            for name in read_only:
                run.layout.channel_dir(name).mkdir(parents=True, exist_ok=True)
            direct = {n: p for n, p in self._local_direct.items() if n in read_only}
            run.name = f"sm-{spec.name[:40]}-{run.host.name}-{self._suffix}"
            binds = run.layout.binds(read_only, direct)
            mounts: list[MountSpec] = list(run.overlays.values())
            if self._engine_path:
                for name in read_only:
                    volume = f"{run.name}-{name[:40]}"
                    run.fast_volumes[name] = engine.create_volume(volume, labels)
                    self._volumes.append(volume)
                binds = {}
                mounts = list(engine_mounts(run.layout, run.fast_volumes))
            hostname: str | None = instance_hostname(self._suffix, run.index)
            aliases: tuple[str, ...] = (run.host.name, instance_hostname(self._suffix, run.index))
            joined = network
            if credentials is not None and network is not None:  # the host's name and network are its pod's
                pod = start_credentials_pod(
                    engine,
                    credentials[1],
                    name=f"{run.name}-pod",
                    hostname=str(hostname),
                    network=network,
                    aliases=aliases,
                    labels={**labels, "sm-contract.host": run.host.name},
                    endpoint=credentials[0],
                )
                self._helpers.append(pod)
                hostname, aliases, joined = None, (), f"container:{pod}"
            run.container_id = engine.create(
                image=spec.image,
                name=run.name,
                hostname=hostname,
                entrypoint=spec.entrypoint,
                command=command,
                environment=env,
                binds=binds,
                mounts=mounts,
                labels={**labels, "sm-contract.host": run.host.name},
                network=joined,
                aliases=aliases,
                extra={
                    **gpu_plan(run.host.instance_type, self.gpus, self.platform.gpu_detection()).host_config,
                    # The instance type's vCPUs and memory (capped at the host's); `resource_limits` False: none.
                    **resource_plan(
                        run.host.instance_type,
                        *engine_capacity(engine),
                        enabled=self.platform.resource_limits,
                    ).host_config,
                },
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
                    self.platform.s3,
                    spec.checkpoint.s3_uri,
                    run.layout.checkpoints,
                    self.platform.checkpoint_sync_s,
                    pull=self._checkpoint_pull(run) if self._engine_path else None,
                    mounted_at=spec.checkpoint.local_path,
                )
                sync.restore()
                self._checkpoints.append(sync)
        if self._engine_path:
            self._put_inputs()
        self.secondary_status = "Training"

        names = {r.container_id: r.name for r in self._hosts if r.container_id}
        self._interference = InterferenceWatcher(engine, names)

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

    def _checkpoint_pull(self, run: _HostRun) -> Callable[[], None]:
        def pull() -> None:
            if run.container_id is not None and run.layout.checkpoints is not None:
                assert run.layout.checkpoint_local_path is not None
                local = run.layout.checkpoint_local_path
                replace_dir(self.platform.engine, run.container_id, local, run.layout.checkpoints)

        return pull

    def _put_inputs(self) -> None:
        """Engine data path, before the start: FastFile volumes filled, /opt/ml/input and checkpoints put in."""
        engine = self.platform.engine
        labels = {LABEL_RUN: self.platform.run_id, LABEL_JOB: f"{self.spec.name}-{self._suffix}"}

        def put(run: _HostRun) -> None:
            assert run.container_id is not None
            for name, volume in run.fast_volumes.items():
                direct = self._local_direct.get(name)
                source = direct if direct is not None and direct.is_dir() else run.layout.channel_dir(name)
                fill_volume(engine, self.spec.image, volume, source, labels)
            fifos = [f"{feeder.channel}_0" for feeder in run.feeders]
            put_input(engine, run.container_id, run.layout, tuple(run.fast_volumes), run.direct_sources, fifos)
            if run.feeders:
                run.helper_id = self._start_helper(run, labels)
                for feeder in run.feeders:
                    if isinstance(feeder, EngineFifoFeeder):
                        feeder.helper_id = run.helper_id

        futures = [self.platform.pool.submit(put, run) for run in self._hosts[1:]]
        put(self._hosts[0])
        for future in futures:
            future.result()

    def _start_helper(self, run: _HostRun, labels: Mapping[str, str]) -> str:
        """A helper container sharing the job container's volumes, idle until the feeders exec into it."""
        engine = self.platform.engine
        image, why = self.platform.helper_image()
        if image is None:
            raise EngineError(why)
        assert run.container_id is not None
        helper = engine.create_utility(
            image,
            command=["/bin/busybox", "sleep", "2147483647"],
            name=f"{run.name}-pipes",
            labels=labels,
            volumes_from=[run.container_id],
            network_mode="none",
        )
        self._helpers.append(helper)
        engine.start_or_raise(helper)
        return helper

    def _collect(self) -> list[str]:
        """Engine data path, after the exit: /opt/ml/model and /opt/ml/output copied out of every container,
        all at once (each archive call costs the engine a mount of the stopped container's volumes)."""
        engine = self.platform.engine
        copies: list[tuple[str, _HostRun, Future[ArchiveMeta]]] = []
        for run in self._hosts:
            if run.container_id is None or self._client_error is not None:
                continue
            for path, dest in (("/opt/ml/model", run.layout.model), ("/opt/ml/output", run.layout.output)):
                copies.append((path, run, self.platform.pool.submit(collect_dir, engine, run.container_id, path, dest)))
        problems: list[str] = []
        for path, run, future in copies:
            try:
                self._meta.update(future.result())
            except Exception as exc:
                problems.append(f"{path} of {run.host.name} could not be copied out ({type(exc).__name__}: {exc})")
        return problems

    def _credentials(self, network: str | None) -> tuple[CredentialsEndpoint, str] | None:
        """The role's credentials endpoint and the pod image serving it; None under network isolation (no
        credentials inside, §9) or where the helper image cannot be had (then none either, with a warning)."""
        if self.spec.network_isolation or network in (None, "none"):
            return None
        image, why = self.platform.helper_image()
        if image is None:
            self._log_warnings.append(f"no container credentials endpoint (contract §11): {why}")
            return None
        keys = self.platform.s3.keys
        return credentials_endpoint(keys.access_key_id, keys.secret_access_key, self.spec.role_arn, time.time()), image

    def _network(self, labels: Mapping[str, str]) -> str | None:
        """Every job gets a network of its own with the hosts' algo names as aliases (one host included: its
        host name is the instance's, not algo-1, contract §7), internal under isolation: every host resolves
        its own name and its peers' (§9: the training toolkit resolves them before it starts the user code),
        and under isolation nothing else is reachable, not the platform's S3, the host or the outside."""
        name = f"sm-{self.spec.name[:40]}-{self._suffix}"
        self._network_name = name
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
                    if channel.input_mode == "File" and not self._engine_path:  # the engine path copies, never links
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
                                engine=self.platform.engine if self._engine_path else None,
                            )
                        )
                        continue
                    local = self._local_direct.get(channel.name)
                    if local is not None:
                        if channel.name in run.overlays:
                            run.channels.append(describe_local(channel, local))
                        elif self._engine_path and channel.input_mode == "File" and _tar_as_is(local):
                            run.direct_sources[channel.name] = local  # read into the archive as it is: no copy
                            run.channels.append(describe_local(channel, local))
                        elif channel.input_mode == "File" or local.is_file():
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
            modes = {c.name: c.input_mode for c in spec.channels}
            hosts = {run.host.name: run.channels for run in self._hosts}
            self._client_error = input_disk_error(spec.volume_size_gb, hosts, modes)  # contract §11
        except ChannelError as exc:
            self._client_error = str(exc)

    def _follow(self, run: _HostRun) -> None:
        assert run.container_id is not None
        pending = b""
        host = run.host.name
        try:
            for chunk in self.platform.engine.follow_logs(run.container_id):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) > MAX_LINE_BYTES:  # one endless line: split it rather than hold it all
                    lines.append(pending)
                    pending = b""
                if lines:
                    self._logs.add_many(host, [line.decode("utf-8", "replace").rstrip("\r") for line in lines])
        except Exception as exc:  # the stream broke off: say so rather than end the log silently
            run.log_error = f"{type(exc).__name__}: {exc}"
        if pending:
            self._logs.add(host, pending.decode("utf-8", "replace"))

    def _supervise(self) -> None:
        engine = self.platform.engine
        deadline = (self.timeline.started or time.time()) + self.spec.max_runtime_s
        unreachable_since: float | None = None
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
                    try:
                        code = engine.wait_or_raise(
                            run.container_id, timeout=min(left, 0.2 if len(pending) > 1 else 1.0)
                        )
                    except NotFound:
                        code = None
                        run.engine_fault = (
                            f"container {run.name} was removed from outside the platform (docker rm?) "
                            f"while {self._phase()}"
                        )
                    except EngineError as exc:
                        unreachable_since = unreachable_since or time.monotonic()
                        if time.monotonic() - unreachable_since < ENGINE_PATIENCE_S:
                            self._done.wait(0.5)
                            continue
                        code = None
                        run.engine_fault = (
                            f"the Docker engine stopped answering for {ENGINE_PATIENCE_S:g} s while waiting for "
                            f"container {run.name} ({self._phase()}): {exc}"
                        )
                    else:
                        unreachable_since = None
                        if code is None:
                            continue
                        run.engine_fault = self._outside_kill(run, code)
                    run.exit_code = code
                    run.exited_at = time.time()
                    run.stop_feeders()
                    pending.remove(run)
                    if run.engine_fault is not None or (
                        code != 0 and self._failure is None and self._stop_reason is None
                    ):
                        if self._failure is None:
                            self._failure = (run.host.name, code)
                        for peer in pending:
                            assert peer.container_id is not None
                            peer.sigkill_sent = True
                            with contextlib.suppress(Exception):
                                engine.kill(peer.container_id, "SIGKILL")
                if pending and time.time() >= deadline and self._stop_reason is None:
                    self.stop(grace=self.platform.grace_s, reason="MaxRuntimeExceeded")
        finally:
            self._finish()

    def _phase(self) -> str:
        if self._stop_reason is None:
            return "training"
        return "the SIGTERM grace period" if self.timeline.sigkill_sent is None else "being killed"

    def _outside_kill(self, run: _HostRun, code: int) -> str | None:
        """A sentence when the container that just exited was removed or SIGKILLed by someone else."""
        assert run.container_id is not None
        try:
            state = self.platform.engine.state(run.container_id)
        except NotFound:
            return f"container {run.name} was removed from outside the platform (docker rm -f?) while {self._phase()}"
        except Exception:
            state = {}
        if state.get("Status") in ("removing", "dead"):
            return f"container {run.name} was removed from outside the platform (docker rm -f?) while {self._phase()}"
        if code == 137 and not run.sigkill_sent and not state.get("OOMKilled"):
            return (
                f"container {run.name} was killed with SIGKILL from outside the platform (docker kill, docker rm -f "
                f"or the host's OOM killer?) while {self._phase()}: exit code 137, but the platform sent no "
                "SIGKILL and the engine reports no OOM kill"
            )
        return None

    def _join_follower(self, run: _HostRun) -> None:
        """Wait for a host's log stream to drain: as long as lines keep coming, so a big log is complete."""
        thread = run.log_thread
        if thread is None:
            return
        seen = -1
        while thread.is_alive():
            count = self._logs.count
            if count == seen:
                self._log_warnings.append(
                    f"the log stream of {run.host.name} stalled for {FOLLOWER_PATIENCE_S:g} s after the container "
                    f"exited; the log may end early (see `docker logs {run.name}` if the container is kept)"
                )
                return
            seen = count
            thread.join(timeout=FOLLOWER_PATIENCE_S)

    def _finish(self) -> None:
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        with self._kill_lock:  # a SIGKILL in flight: let it record which hosts it killed
            pass
        for run in self._hosts:
            run.stop_feeders()
        for helper in self._helpers:  # before the job containers: their volumes go with them only once unused
            with contextlib.suppress(Exception):
                self.platform.engine.remove(helper)
        exits = [r.exited_at for r in self._hosts if r.exited_at is not None]
        self.timeline.exited = max(exits) if exits else None
        for run in self._hosts:
            self._join_follower(run)
        if self._interference is not None:
            self._interference.finish(self._hosts, self.timeline)
        for sync in self._checkpoints:
            with contextlib.suppress(Exception):
                sync.finish()
        try:
            self._result = self._export()
        finally:
            self._done.set()

    def _written_elsewhere(self, run: _HostRun) -> list[str]:
        """Files the image wrote under /opt/ml (outside input/ and model/) or elsewhere in its filesystem."""
        found = [f"/opt/ml/output/{f}" for f in list_files(run.layout.output) if not f.startswith("data/")]
        if run.layout.checkpoints is not None:
            found += [f"{run.layout.checkpoint_local_path}/{f}" for f in list_files(run.layout.checkpoints)]
        if run.container_id is not None:
            skip = ("/opt/ml/input", "/opt/ml/model", "/proc", "/sys", "/dev", "/run", "/root/.cache")
            found += [p for p in self.platform.engine.added_files(run.container_id) if not p.startswith(skip)]
        return sorted(dict.fromkeys(found))[:10]

    def _export(self) -> TrainingJobResult:
        engine = self.platform.engine
        s3 = self.platform.s3
        spec = self.spec
        base = f"{spec.output_path}/{spec.name}/output"
        packed = spec.output_compression != "NONE"  # NONE: the files themselves, under output/model/ (§11)
        model_uri = f"{base}/model.tar.gz" if packed else f"{base}/model/"
        oom = False
        host_results: list[HostResult] = []
        removals: list[Future[None]] = []
        collect_problems = self._collect() if self._engine_path else []
        for run in self._hosts:
            if run.container_id is not None and run.start_error is None and self._client_error is None:
                with contextlib.suppress(Exception):
                    oom = oom or bool(engine.state(run.container_id).get("OOMKilled"))
            model_files = list_files(run.layout.model)
            elsewhere = self._written_elsewhere(run) if not model_files else []
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
                    engine_fault=run.engine_fault,
                    failure_text=run.layout.failure_text(),
                    model_files=model_files,
                    output_files=list_files(run.layout.output_data),
                    channels=run.channels,
                    written_elsewhere=elsewhere,
                    exited=run.exited_at,
                )
            )
        self.secondary_status = "Uploading"
        model_roots = [r.layout.model for r in self._hosts]
        model = pack_and_upload(s3, model_roots, model_uri, always=True, metadata=self._meta, compressed=packed)
        output_target = f"{base}/output.tar.gz" if packed else f"{base}/data/"
        output_uri: str | None = output_target
        output = pack_and_upload(
            s3, [r.layout.output_data for r in self._hosts], output_target, metadata=self._meta, compressed=packed
        )
        if not output.files:
            output_uri = None
        for future in removals:
            with contextlib.suppress(Exception):
                future.result()
        if self._network_id is not None and not self.platform.keep:
            self.platform.leave_network(self._network_name)
            self.platform.engine.remove_network(self._network_id)
        if not self.platform.keep:
            for volume in self._volumes:
                with contextlib.suppress(Exception):
                    engine.remove_volume(volume)
        verdict = decide_verdict(
            host_results,
            client_error=self._client_error,
            first_failure=self._failure[0] if self._failure is not None else None,
            stop_reason=self._stop_reason,
            oom=oom,
        )
        engine_faults = [r.engine_fault for r in self._hosts if r.engine_fault is not None]
        warnings = [f"engine fault, not the image's: {fault}" for fault in engine_faults]
        warnings.extend(collect_problems)
        warnings.extend(w for sync in self._checkpoints for w in sync.warnings)
        warnings.extend(self._log_warnings)
        for run in self._hosts:
            if run.log_error is not None and run.engine_fault is None:
                warnings.append(f"the log stream of {run.host.name} broke off ({run.log_error}); the log may end early")
        if self._fingerprints:
            changed = modified_inputs(self._fingerprints)
            if changed:
                warnings.append(
                    f"the container modified {len(changed)} input file(s) in place ({', '.join(changed[:3])}); "
                    "your local channel files changed while the job ran (not through the container's channel, which "
                    "is a copy-on-write layer): another process wrote them"
                )
        self.secondary_status = verdict.SecondaryStatus
        self._logs.close()
        logs = self._logs.text()
        if self.platform.keep:
            job_dir: Path | None = self.job_dir
        else:
            job_dir = None
            remove_tree(self.job_dir)
        self.timeline.finished = time.time()
        result = TrainingJobResult(
            TrainingJobName=spec.name,
            TrainingJobArn=self.arn,
            TrainingJobStatus=verdict.TrainingJobStatus,
            SecondaryStatus=verdict.SecondaryStatus,
            FailureReason=verdict.FailureReason,
            ModelArtifacts={"S3ModelArtifacts": model_uri},
            exit_code=verdict.exit_code,
            hosts=host_results,
            logs=logs,
            timeline=self.timeline,
            model_files=model.files,
            output_files=output.files,
            output_data_uri=output_uri,
            model_clashes=model.clashes,
            not_simulated=spec.not_simulated,
            checkpoints_restored=sorted({f for s in self._checkpoints for f in s.restored}),
            logs_after_sigterm=self._logs.since(self.timeline.sigterm_sent) if self.timeline.sigterm_sent else [],
            warnings=warnings,
            job_dir=job_dir,
            s3=s3,
            log_path=self._logs.path,
            engine_faults=engine_faults,
            model_links=model.links,
        )
        if not self.platform.keep:
            result.discard_log_with_result()
        return result

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

    def last_log_line(self) -> str:
        """The newest log line (for progress displays); empty before the first."""
        tail = self._logs.tail(1)
        return tail[0] if tail else ""

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
        self.timeline.stop_requested = time.time()
        engine = self.platform.engine
        running = [r for r in self._hosts if r.container_id is not None and r.exit_code is None]
        if running and running[0].container_id is not None:
            self.timeline.process_tree = engine.top(running[0].container_id)
            signals = engine.signal_dispositions(running[0].container_id, self.timeline.process_tree)
            self.timeline.signals_at_sigterm = signals
            pid1 = next((p for p in signals if p.pid == 1), None)
            self.timeline.pid1_sigterm = pid1.sigterm if pid1 is not None else None
        self.timeline.sigterm_sent = time.time()
        self.secondary_status = "Stopping"
        for run in running:
            assert run.container_id is not None
            engine.kill(run.container_id, "SIGTERM")

        deadline = self.timeline.sigterm_sent + grace
        self.kill_due = self.timeline.kill_due = deadline

        def kill() -> None:
            first = running[0]
            if first.exit_code is None and first.container_id is not None:
                # Look at the processes just before the deadline, so SIGKILL itself goes out on time.
                self.timeline.process_tree_at_kill = engine.top(first.container_id)
            if self._done.wait(max(0.0, deadline - time.time())):
                return
            with self._kill_lock:  # _finish waits for this, so the result knows which hosts were killed
                for run in running:
                    if run.exit_code is None and run.container_id is not None:
                        self.timeline.sigkill_sent = self.timeline.sigkill_sent or time.time()
                        run.sigkill_sent = True
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
