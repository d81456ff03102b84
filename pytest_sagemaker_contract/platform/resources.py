"""The session's platform resources, shared by every job it starts."""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from .data_path import overlay_supported
from .engine import LABEL_RUN, Engine, EngineError
from .gpu import GpuDetection, detect
from .helper import helper_image
from .logs import LogSink
from .owner import claim
from .s3 import S3Server
from .s3_relay import S3Relay
from .slots import SlotPool
from .warm_pool import WarmPools

__all__ = ["DEFAULT_GRACE_S", "INTERRUPT_GRACE_S", "PlatformCore"]

#: StopTrainingJob and MaxRuntimeInSeconds behave like `docker stop -t 120` (contract §5).
DEFAULT_GRACE_S = 120.0


class RunningJob(Protocol):
    """What closing needs of a job (TrainingJob, without importing it: jobs depend on this module)."""

    def ended(self, timeout: float | None = None) -> bool: ...


#: How long closing waits for a job whose containers were removed to finish its export.
JOB_END_WAIT_S = 30.0
#: How long an interrupted session lets its running containers handle SIGTERM before removing them.
INTERRUPT_GRACE_S = 5.0


class PlatformCore:
    """What every job of one session shares: the engine, the S3, a work directory, one run id, a thread pool.

    Jobs take these through this public surface; `TrainingPlatform` adds CreateTrainingJob on top.
    """

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
        relay_s3: bool = False,
        gpus: str = "auto",
        resource_limits: bool = True,
        data_path: str = "bind",
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
        #: No direct way from containers to S3 here: relay it through the Docker API (s3_relay.py).
        self.relay_s3 = relay_s3 and container_s3_endpoint is None
        #: Single-host jobs' networks and credentials pods, handed from one job to the next (slots.py).
        self.slots = SlotPool(engine, {LABEL_RUN: self.run_id})
        self._relay: S3Relay | None = None
        #: Why the relay could not start, once it was tried and failed.
        self.relay_error: str | None = None
        self.gpus = gpus
        #: Give containers the instance type's vCPUs and memory (--sm-resources); off where limits can't hold.
        self.resource_limits = resource_limits
        #: How bytes reach /opt/ml: "bind" (host directories, local engine as root) or "engine" (volumes and
        #: the archive endpoints, any engine); see data_path.py.
        self.data_path = data_path
        #: The session's managed warm pools (KeepAlivePeriodInSeconds) and their persistent caches.
        self.warm_pools = WarmPools(workdir / "warm-pools")
        self._gpu_detection: GpuDetection | None = None
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sm-platform")
        self._uploaded: set[tuple[str, str]] = set()
        self._upload_lock = threading.Lock()
        #: Jobs started on this platform that may still be running (for close()).
        self.live_jobs: weakref.WeakSet[RunningJob] = weakref.WeakSet()
        self._overlay: tuple[bool, str] | None = None
        self._overlay_lock = threading.Lock()
        self._helper: tuple[str | None, str] | None = None
        self._relay_lock = threading.Lock()
        if not keep:  # kept resources carry no owner: only the user removes them
            claim(engine)
        workdir.mkdir(parents=True, exist_ok=True)

    def overlay_support(self, image: str) -> tuple[bool, str]:
        """Can local File-mode channels be copy-on-write overlays here (measured once, with `image`)?"""
        with self._overlay_lock:
            if self._overlay is None:
                self._overlay = overlay_supported(self.engine, image, self.workdir / ".overlay-probe", self.run_id)
            return self._overlay

    def helper_image(self) -> tuple[str | None, str]:
        """The platform's helper image on this engine (Pipe mode on the engine data path), built once; or
        None and why not."""
        with self._overlay_lock:
            if self._helper is None:
                self._helper = helper_image(self.engine)
            return self._helper

    def pipe_support(self) -> tuple[bool, str]:
        """Can this platform feed Pipe-mode channels? Always on the bind path; on the engine path through
        the helper image."""
        if self.data_path != "engine":
            return True, "FIFOs in the bind-mounted job directory"
        image, reason = self.helper_image()
        if image is None:
            return False, f"Pipe mode on the engine data path needs the platform's helper image: {reason}"
        return True, f"FIFOs fed inside the engine by a helper container ({reason})"

    def container_s3_url(self, network: str | None) -> str | None:
        """Where containers on `network` (None: the default bridge) reach this session's S3: the direct
        endpoint, else the relay's address on that network (started on first use), else None."""
        if self.container_s3_endpoint:
            return self.container_s3_endpoint
        if not self.relay_s3 or network == "none":
            return None
        with self._relay_lock:
            if self._relay is None and self.relay_error is None:
                image, why = self.helper_image()
                if image is None:
                    self.relay_error = why
                else:
                    relay = S3Relay(
                        self.engine,
                        image,
                        ("127.0.0.1", self.s3.port),
                        f"sm-s3-relay-{self.run_id}",
                        {LABEL_RUN: self.run_id},
                    )
                    try:
                        self._relay = relay.start()
                    except EngineError as exc:
                        self.relay_error = str(exc)
            started = self._relay
        if started is None:
            return None
        try:
            return started.endpoint(network)
        except Exception as exc:  # the job runs without S3, as where there is none; the reason is kept
            self.relay_error = f"the S3 relay could not join network {network or 'bridge'}: {exc}"
            return None

    def leave_network(self, network: str) -> None:
        """A job's network is about to go: the relay lets go of it first."""
        if self._relay is not None:
            self._relay.leave(network)

    def gpu_detection(self) -> GpuDetection:
        """What this engine and host can give containers in GPUs (read once per platform)."""
        if self._gpu_detection is None:
            self._gpu_detection = detect(self.engine.info())
        return self._gpu_detection

    def upload_once(self, source: Path, uri: str) -> None:
        """Put a local file or directory under `uri` in the platform's S3, once per (source, uri)."""
        key = (str(source.resolve()), uri)
        with self._upload_lock:
            if key in self._uploaded:
                return
            self.s3.upload_path(source, uri)
            self._uploaded.add(key)

    def close(self, interrupted: bool = False) -> int:
        """Remove whatever this run left behind (unless keeping); the number of leftovers removed.

        `interrupted` (Ctrl-C, SIGTERM, SIGHUP of the test process): running containers get SIGTERM and
        at most `INTERRUPT_GRACE_S` to exit before they are removed, and pending work is cancelled.
        """
        if interrupted and not self.keep:
            # A second Ctrl-C ends the waiting, not the removal.
            with contextlib.suppress(KeyboardInterrupt):
                self.engine.stop_run(self.run_id, INTERRUPT_GRACE_S)
        if self._relay is not None and not self.keep:
            self._relay.close()
        self.slots.close(self.leave_network)
        removed = 0 if self.keep else self.engine.sweep(self.run_id)
        # With their containers gone, the jobs still running finish their export now: before S3 stops.
        for job in list(self.live_jobs):
            job.ended(timeout=JOB_END_WAIT_S)
        self.pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
        return removed
