"""A platform of its own for `sm-contract serve`: started and cleaned up the way a pytest session does it.

Dead sessions' leftovers are reaped first; this process's containers, networks and log folder carry its
owner labels, so when it dies without cleaning up (SIGKILL), the next session or server reaps its jobs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..platform import DEFAULT_GRACE_S, Engine, S3Server, TrainingPlatform
from ..platform.data_path import choose_data_path, detect_topology
from ..platform.logs import claim_log_dir, reap_dead_log_dirs, release_log_dir
from ..platform.owner import claim, reap_dead_sessions, write_owner_file

__all__ = ["LocalPlatform"]


class LocalPlatform:
    """`start()` -> a TrainingPlatform on this machine's engine with a gated S3; `close()` removes it all."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        grace_s: float = DEFAULT_GRACE_S,
        data_path: str = "auto",
        gpus: str = "auto",
        resource_limits: bool = True,
    ) -> None:
        self.region = region
        self.grace_s = grace_s
        self.data_path = data_path
        self.gpus = gpus
        self.resource_limits = resource_limits
        self.run_id = f"serve-{os.urandom(4).hex()}"
        self.reaped: list[str] = []
        self.platform: TrainingPlatform | None = None

    def start(self) -> TrainingPlatform:
        """Connect to the engine (EngineError when it cannot be reached), reap, measure, start S3."""
        engine = Engine()
        claim(engine)
        self.reaped = reap_dead_sessions(engine).removed
        topology = detect_topology(engine, self.run_id)
        engine.local_proc = topology.shared_fs is True
        gateway = topology.gateway
        s3 = S3Server(host=gateway or "127.0.0.1").start()
        workdir = Path(tempfile.mkdtemp(prefix=f"sm-contract-{self.run_id}-"))
        self.reaped += reap_dead_log_dirs()
        claim_log_dir(self.run_id)
        write_owner_file(workdir, engine)
        self.platform = TrainingPlatform(
            engine,
            s3,
            workdir,
            run_id=self.run_id,
            grace_s=self.grace_s,
            default_network=None if gateway or topology.has_bridge else "none",
            container_s3_endpoint=s3.endpoint_url if gateway else None,
            relay_s3=topology.relay,
            gpus=self.gpus,
            region=self.region,
            resource_limits=self.resource_limits,
            data_path=choose_data_path(self.data_path, topology),
        )
        return self.platform

    def close(self, interrupted: bool = True) -> None:
        """As an interrupted session: running jobs get SIGTERM and a short grace, then everything is removed."""
        platform, self.platform = self.platform, None
        if platform is None:
            return
        try:
            platform.close(interrupted)
        finally:
            platform.s3.stop()
            release_log_dir(platform.run_id)
            shutil.rmtree(platform.workdir, ignore_errors=True)
