"""The state one pytest session (or xdist worker) shares, and the stash keys that reach it.

Every plugin module imports this one at the top and nothing here imports them back: the hooks, the
fixtures, the built-in suite, GPU support and the report all find the `ContractSession` through
`session_of(config)`. It lives in `config.stash`, so two sessions in one process (`pytest.main` twice,
`pytester.runpytest_inprocess`) share nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from .jobs import instance_type_of, local_channel_uri
from .platform import Engine, EngineError, S3Server, TrainingPlatform
from .platform.data_path import Topology, choose_data_path, detect_topology
from .platform.engine import LABEL_RUN
from .platform.instances import engine_capacity, resource_plan
from .platform.logs import claim_log_dir, reap_dead_log_dirs, release_log_dir
from .platform.owner import claim, reap_dead_sessions, write_owner_file
from .platform.resources import INTERRUPT_GRACE_S
from .settings import Settings

__all__ = [
    "LABEL_TAG",
    "SESSION_KEY",
    "SUITE_IMAGE_KEY",
    "ContractSession",
    "default_parallel",
    "session_of",
    "suite_image",
]

#: Containers and networks of a session started with SM_CONTRACT_RUN_ID=<tag> carry this label.
LABEL_TAG = "sm-contract.tag"
SESSION_KEY = pytest.StashKey["ContractSession"]()
#: Set on the built-in suite's collector node: the image that suite checks (read by the `sm_image` fixture).
SUITE_IMAGE_KEY = pytest.StashKey[str]()


class ContractSession:
    """Everything one pytest session (or xdist worker) shares: settings, what was measured about the engine,
    and a platform started on first use."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        # The worker's own input, not its environment: a pytest started inside a worker's test inherits
        # PYTEST_XDIST_WORKER but is no worker, and must not share the worker's run-id prefix.
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        worker = str(workerinput.get("workerid", ""))
        #: A label for grouping (tests look for their own leftovers by it); never the key a sweep uses.
        self.tag = os.environ.get("SM_CONTRACT_RUN_ID", "")
        base = self.tag or str(workerinput.get("testrunuid", ""))[:8]
        self.run_id = "-".join(p for p in (base, worker, os.urandom(4).hex()) if p)
        #: An xdist controller fixes its test run's id, which starts its workers' run ids (see close()).
        self._controller = not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") != "no"
        if self._controller and getattr(config.option, "testrunuid", "") is None:
            config.option.testrunuid = uuid.uuid4().hex
        #: What the session removed at its start that dead sessions had left behind.
        self.reaped: list[str] = []
        #: What that reaping could not remove, one line each (the session goes on regardless).
        self.reap_warnings: list[str] = []
        self._platform: TrainingPlatform | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self.kept: list[Path] = []
        #: The engine and what was measured about it (once per session: the header and the platform share it).
        self._engine: Engine | None = None
        self._engine_error: EngineError | None = None
        self.topology: Topology | None = None
        #: The header's engine lines, measured by `measure_for_header` at session start; the header only reads them.
        self.header_lines: list[str] = []

    def _measure(self) -> tuple[Engine, Topology]:
        """Connect to the engine, reap dead sessions' leftovers, measure the topology; once. Raises EngineError."""
        if self._engine_error is not None:
            raise self._engine_error  # once per session: a black-hole DOCKER_HOST costs its timeout once
        if self._engine is None or self.topology is None:
            try:
                engine = Engine()
            except EngineError as exc:
                self._engine_error = exc
                raise
            if not self.settings.keep:  # kept resources carry no owner: only the user removes them
                claim(engine)
            if self.tag:
                engine.default_labels[LABEL_TAG] = self.tag
            reaped = reap_dead_sessions(engine)
            self.reaped, self.reap_warnings = reaped.removed, reaped.warnings
            self.topology = detect_topology(engine, self.run_id, self.settings.images)
            engine.local_proc = self.topology.shared_fs is True
            self._engine = engine
        return self._engine, self.topology

    def engine(self) -> Engine:
        """The session's engine, connected, claimed and measured once (raises EngineError)."""
        with self._lock:
            return self._measure()[0]

    def container_s3_unavailable(self) -> str | None:
        """Why this engine's containers cannot reach the session's S3 (measured once), or None when they can
        or the engine cannot be reached at all (that failure is reported where the platform starts)."""
        with self._lock:
            try:
                _engine, topology = self._measure()
            except EngineError:
                return None
        platform = self._platform
        if platform is not None and platform.relay_error is not None:
            return platform.relay_error
        return topology.container_s3_unavailable()

    def measure_for_header(self) -> None:
        """At session start: connect, reap, measure the topology and the engine's capacity, and keep the header's
        lines. Only when the suite will run (an image is given); otherwise the engine is measured at first use."""
        if not self.settings.images:
            return
        with self._lock:
            try:
                engine, topology = self._measure()
            except EngineError as exc:
                self.header_lines = [f"sagemaker-contract: {exc}"]
                return
            endpoint = self._platform.container_s3_endpoint if self._platform is not None else None
        data_path = choose_data_path(self.settings.data_path, topology)
        lines = [topology.header(data_path, self.settings.data_path != "auto", endpoint)]
        plan = resource_plan(self.instance_type(), *engine_capacity(engine), enabled=self.settings.resources)
        if plan.note:
            lines.append(f"sagemaker-contract: resources: {plan.note}")
        self.header_lines = lines

    def header(self) -> list[str]:
        """The report header: the options and where each came from, then what `measure_for_header` found."""
        return self.settings.header(self.header_lines)

    def instance_type(self) -> str:
        """The instance type the suite's jobs get (the planner's rule: --sm-instance-type, the --sm-job request's,
        else the default)."""
        return instance_type_of(self.settings.job_request, self.settings.instance_type)

    def platform(self) -> TrainingPlatform:
        with self._lock:
            if self._error is not None:
                pytest.fail(self._error, pytrace=False)
            if self._platform is None:
                try:
                    engine, topology = self._measure()
                except EngineError as exc:
                    self._error = f"sagemaker-contract: {exc}"
                if self._error is not None:  # failed outside the except: one line, no chained context
                    pytest.fail(self._error, pytrace=False)
                gateway = topology.gateway
                s3 = S3Server(host=gateway or "127.0.0.1").start()
                workdir = Path(tempfile.mkdtemp(prefix=f"sm-contract-{self.run_id}-"))
                if not self.settings.keep:
                    self.reaped += reap_dead_log_dirs()
                    claim_log_dir(self.run_id)
                    write_owner_file(workdir, engine)
                self._platform = TrainingPlatform(
                    engine,
                    s3,
                    workdir,
                    run_id=self.run_id,
                    keep=self.settings.keep,
                    grace_s=self.settings.grace_s,
                    # No address here: containers still get the engine's bridge (peers, the outside), not S3.
                    default_network=None if gateway or topology.has_bridge else "none",
                    container_s3_endpoint=s3.endpoint_url if gateway else None,
                    relay_s3=topology.relay,
                    gpus=self.settings.gpus,
                    region=self.settings.region,
                    set_region_env=self.settings.set_region_env,
                    resource_limits=self.settings.resources,
                    data_path=choose_data_path(self.settings.data_path, topology),
                )
            return self._platform

    @property
    def parallel(self) -> int:
        """How many checks (jobs) of one image run at once: --sm-parallel, else derived from the host."""
        return self.settings.parallel or default_parallel()

    @property
    def started(self) -> bool:
        return self._platform is not None

    def channel_uri(self, name: str, base: Mapping[str, Any] | None) -> str:
        """The S3 URI a local channel stands in for: the job's own for that channel, or a generated one.

        Nothing is uploaded here: the platform stages the local data without a copy where the channel's
        semantics allow, and uploads it to this URI where the S3 path itself matters.
        """
        for channel in (base or {}).get("InputDataConfig", []):
            if channel.get("ChannelName") == name:
                uri = channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
                if uri:
                    return str(uri)
        return local_channel_uri(self.run_id, name)

    def close(self, interrupted: bool = False) -> None:
        if interrupted and self._controller and not self.settings.keep:
            self._remove_worker_leftovers()
        if self._platform is None:
            return
        platform, self._platform = self._platform, None
        try:
            platform.close(interrupted)
        finally:
            platform.s3.stop()
            release_log_dir(platform.run_id)
        if self.settings.keep:
            self.kept.append(platform.workdir)
        else:
            shutil.rmtree(platform.workdir, ignore_errors=True)

    def _remove_worker_leftovers(self) -> None:
        """An interrupted xdist controller, once xdist has ended its workers (it gives them 10 s, then kills
        them): what the workers could not clean up, found by their run ids (`<tag or test run id>-gw…`), gets
        SIGTERM and is removed, with their work directories and log folders, not left to a later session."""
        prefix = f"{self.tag or str(getattr(self.config.option, 'testrunuid', '') or '')[:8]}-gw"
        try:
            engine = Engine()
        except EngineError:
            return
        try:
            found = engine.containers(LABEL_RUN)
            found += engine.networks(LABEL_RUN)
            runs = {str((item.get("Labels") or {}).get(LABEL_RUN, "")) for item in found}
            for run_id in sorted(r for r in runs if r.startswith(prefix)):
                engine.stop_run(run_id, INTERRUPT_GRACE_S)
                engine.sweep(run_id)
        except Exception:  # the engine went away: a later session reaps what is left
            pass
        finally:
            engine.close()
        for workdir in Path(tempfile.gettempdir()).glob(f"sm-contract-{prefix}*"):
            shutil.rmtree(workdir, ignore_errors=True)
        self.reaped += reap_dead_log_dirs()


def default_parallel() -> int:
    """Jobs mostly wait (on training, on SIGTERM graces), so a few per core; at most one per 2 GiB of memory."""
    cpus = os.cpu_count() or 1
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gib = 8.0
    return max(2, min(16, cpus * 4, int(memory_gib // 2)))


def session_of(config: pytest.Config) -> ContractSession:
    return config.stash[SESSION_KEY]


def suite_image(node: pytest.Item) -> str | None:
    """The image of the built-in suite `node` belongs to, or None for the user's own tests."""
    for parent in reversed(node.listchain()):
        image = parent.stash.get(SUITE_IMAGE_KEY, None)
        if image is not None:
            return image
    return None
