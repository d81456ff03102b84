"""The data path strategy of one job, chosen once: `BindDataPath` or `EngineDataPath` (the `DataPath` interface).

Serves every stage: the plan's overlays, the mounts the run's containers get, how staging treats local
channels, inputs put in before the start and outputs copied out after the exit. The byte-level mechanics
(archives, volumes, overlays) are in data_path.py; this module is what one job does with them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from ..spec import ChannelSpec
from .data_path import (
    ENGINE,
    ArchiveMeta,
    collect_dir,
    engine_mounts,
    fill_volume,
    overlay_mount,
    put_input,
    replace_dir,
)
from .engine import Engine, EngineError, MountSpec
from .job_plan import DataPath, HostRun, JobPlan, JobState
from .layout import OPT_ML, channels_for, file_system_binds, read_only_file_systems
from .pipes import EngineFifoFeeder
from .resources import PlatformCore
from .warm_pool import JobWarmPool

__all__ = ["BindDataPath", "EngineDataPath", "choose_job_data_path"]


def _tar_as_is(source: Path) -> bool:
    """A local directory whose tree can go into the input archive as it is: no links (S3 has none, so a
    channel gets their targets' bytes, which `stage_local` copies) and nothing but files and directories."""
    if not source.is_dir():
        return False
    return all((p.is_file() or p.is_dir()) and not p.is_symlink() for p in source.rglob("*"))


def choose_job_data_path(platform: PlatformCore, plan: JobPlan) -> DataPath:
    """The session's data path (measured once per session, data_path.choose_data_path) as this job's strategy."""
    return EngineDataPath(platform, plan) if platform.data_path == ENGINE else BindDataPath(platform, plan)


class BindDataPath:
    """Host directories bind-mounted; a local File channel directory is a copy-on-write overlay of the user's."""

    def __init__(self, platform: PlatformCore, plan: JobPlan) -> None:
        self.platform = platform
        self.plan = plan
        self.problems: list[str] = []
        self.warm = JobWarmPool(platform.warm_pools, plan.spec, platform.run_id)

    def prepare(self) -> None:
        self.warm.claim()
        plan = self.plan
        for run in plan.hosts:
            for channel in channels_for(plan.spec, run.host):
                source = plan.local_direct.get(channel.name)
                if channel.input_mode != "File" or source is None or not source.is_dir():
                    continue
                if any(path.is_symlink() for path in source.rglob("*")):
                    continue  # S3 has no links: the channel gets the targets' bytes (a copy), not dangling links
                if not self.platform.overlay_support(plan.spec.image)[0]:
                    break
                scratch = plan.job_dir / f"{run.host.name}.overlay" / channel.name
                mount = overlay_mount(source, scratch, f"{OPT_ML}/input/data/{channel.name}")
                if mount is not None:
                    run.layout.channel_dir(channel.name).mkdir(parents=True, exist_ok=True)
                    run.overlays[channel.name] = mount

    def mounts(self, run: HostRun, read_only: Sequence[str]) -> tuple[dict[str, dict[str, str]], list[MountSpec]]:
        direct = {n: p for n, p in self.plan.local_direct.items() if n in read_only}
        binds = {
            **run.layout.binds(tuple(read_only), direct),
            **file_system_binds(self.plan.spec, run.host, self.plan.local),
            **self.warm.binds(run.index),
        }
        return binds, list(run.overlays.values())

    def watches_local_inputs(self) -> bool:
        return True

    def reads_directly(self, channel: ChannelSpec, local: Path) -> bool:
        return False

    def pipe_engine(self) -> Engine | None:
        return None

    def checkpoint_pull(self, run: HostRun) -> Callable[[], None] | None:
        return None

    def before_start(self) -> None:
        pass

    def after_exit(self, state: JobState) -> None:
        pass

    def packing_metadata(self) -> ArchiveMeta:
        return {}

    def remove_helpers(self) -> None:
        pass

    def remove_volumes(self) -> None:
        self.warm.release(healthy=not any(run.engine_fault for run in self.plan.hosts))


class EngineDataPath:
    """No host path reaches the engine: /opt/ml in volumes, inputs put into the created containers and outputs
    copied out of the exited ones through the archive API; FastFile channels are filled volumes; Pipe FIFOs
    are fed from a helper container that shares the job container's volumes."""

    def __init__(self, platform: PlatformCore, plan: JobPlan) -> None:
        self.platform = platform
        self.plan = plan
        self.engine = platform.engine
        self.problems: list[str] = []
        self._volumes: list[str] = []
        self._helpers: list[str] = []
        #: The real mode and owner of every collected artifact, for packing them intact.
        self._meta: ArchiveMeta = {}
        self.warm = JobWarmPool(platform.warm_pools, plan.spec, platform.run_id, self.engine)

    def prepare(self) -> None:
        self.warm.claim()

    def mounts(self, run: HostRun, read_only: Sequence[str]) -> tuple[dict[str, dict[str, str]], list[MountSpec]]:
        for name in (*read_only, *read_only_file_systems(self.plan.spec, run.host)):  # ro file systems: filled volumes
            volume = f"{run.name}-{name[:40]}"
            run.fast_volumes[name] = self.engine.create_volume(volume, self.plan.labels)
            self._volumes.append(volume)
        return {}, [*engine_mounts(run.layout, run.fast_volumes), *self.warm.mounts(run.index)]

    def watches_local_inputs(self) -> bool:
        return False  # the engine path copies, never links

    def reads_directly(self, channel: ChannelSpec, local: Path) -> bool:
        return channel.input_mode == "File" and _tar_as_is(local)

    def pipe_engine(self) -> Engine | None:
        return self.engine

    def checkpoint_pull(self, run: HostRun) -> Callable[[], None] | None:
        def pull() -> None:
            if run.container_id is not None and run.layout.checkpoints is not None:
                assert run.layout.checkpoint_local_path is not None
                local = run.layout.checkpoint_local_path
                replace_dir(self.engine, run.container_id, local, run.layout.checkpoints)

        return pull

    def before_start(self) -> None:
        """FastFile volumes filled, /opt/ml/input and checkpoints put in, Pipe helpers started: every host at once."""
        hosts = self.plan.hosts
        futures = [self.platform.pool.submit(self._put, run) for run in hosts[1:]]
        self._put(hosts[0])
        for future in futures:
            future.result()

    def _put(self, run: HostRun) -> None:
        assert run.container_id is not None
        for name, volume in run.fast_volumes.items():
            direct = self.plan.local_direct.get(name)
            source = direct if direct is not None and direct.is_dir() else run.layout.channel_dir(name)
            fill_volume(self.engine, self.plan.spec.image, volume, source, self.plan.labels)
        fifos = [f"{feeder.channel}_0" for feeder in run.feeders]
        put_input(self.engine, run.container_id, run.layout, tuple(run.fast_volumes), run.direct_sources, fifos)
        if run.feeders:
            run.helper_id = self._start_helper(run)
            for feeder in run.feeders:
                if isinstance(feeder, EngineFifoFeeder):
                    feeder.helper_id = run.helper_id

    def _start_helper(self, run: HostRun) -> str:
        """A helper container sharing the job container's volumes, idle until the feeders exec into it."""
        image, why = self.platform.helper_image()
        if image is None:
            raise EngineError(why)
        assert run.container_id is not None
        helper = self.engine.create_utility(
            image,
            command=["/bin/busybox", "sleep", "2147483647"],
            name=f"{run.name}-pipes",
            labels=self.plan.labels,
            volumes_from=[run.container_id],
            network_mode="none",
        )
        self._helpers.append(helper)
        self.engine.start_or_raise(helper)
        return helper

    def after_exit(self, state: JobState) -> None:
        """/opt/ml/model and /opt/ml/output copied out of every container, all at once (each archive call costs
        the engine a mount of the stopped container's volumes)."""
        copies: list[tuple[str, HostRun, Future[ArchiveMeta]]] = []
        for run in self.plan.hosts:
            if run.container_id is None or state.client_error is not None:
                continue
            for path, dest in (("/opt/ml/model", run.layout.model), ("/opt/ml/output", run.layout.output)):
                future = self.platform.pool.submit(collect_dir, self.engine, run.container_id, path, dest)
                copies.append((path, run, future))
        for path, run, future in copies:
            try:
                self._meta.update(future.result())
            except Exception as exc:
                self.problems.append(f"{path} of {run.host.name} could not be copied out ({type(exc).__name__}: {exc})")

    def packing_metadata(self) -> ArchiveMeta:
        return self._meta

    def remove_helpers(self) -> None:
        for helper in self._helpers:
            with contextlib.suppress(Exception):
                self.engine.remove(helper)

    def remove_volumes(self) -> None:
        for volume in self._volumes:
            with contextlib.suppress(Exception):
                self.engine.remove_volume(volume)
        self.warm.release(healthy=not any(run.engine_fault for run in self.plan.hosts))
