"""Managed warm pools (ResourceConfig.KeepAlivePeriodInSeconds): the persistent cache a matching next job finds.

The developer guide's "SageMaker AI Managed Warm Pools": a job with KeepAlivePeriodInSeconds gets the persistent
cache /opt/ml/sagemaker/warmpoolcache, named by SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY. When the job ends
(completed, stopped, or failed with an algorithm or client error) its pool stays Available for that many
seconds; the next job of the session that matches it (RoleArn; ResourceConfig InstanceCount, InstanceType,
VolumeKmsKeyId, VolumeSizeInGB; VpcConfig SecurityGroupIds and Subnets; EnableInterContainerTrafficEncryption;
EnableNetworkIsolation) and sets KeepAlivePeriodInSeconds itself takes it over, cache included; once the period
ends unclaimed, the pool and its cache are deleted. Warm pools are not used with managed spot training or with
heterogeneous clusters (instance groups). The image is not part of the match.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..spec import TrainingJobSpec
from .engine import LABEL_RUN, Engine, MountSpec

__all__ = [
    "WARM_POOL_CACHE",
    "WARM_POOL_ENV",
    "JobWarmPool",
    "WarmPool",
    "WarmPools",
    "match_key",
    "warm_pool_eligible",
]

WARM_POOL_CACHE = "/opt/ml/sagemaker/warmpoolcache"
WARM_POOL_ENV = "SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY"


def warm_pool_eligible(spec: TrainingJobSpec) -> bool:
    """Whether the job gets a warm pool: KeepAlivePeriodInSeconds set, no managed spot, no instance groups."""
    req = spec.request
    groups = (req.get("ResourceConfig") or {}).get("InstanceGroups")
    return bool(spec.keep_alive_s) and not req.get("EnableManagedSpotTraining") and not groups


def match_key(spec: TrainingJobSpec) -> str:
    """What a warm pool's next job must share with its last one (the guide's "Matching training jobs")."""
    req: Mapping[str, Any] = spec.request
    resource = req.get("ResourceConfig") or {}
    vpc = req.get("VpcConfig") or {}
    facts = {
        "RoleArn": req.get("RoleArn"),
        "InstanceCount": resource.get("InstanceCount", 1),
        "InstanceType": resource.get("InstanceType"),
        "VolumeKmsKeyId": resource.get("VolumeKmsKeyId"),
        "VolumeSizeInGB": resource.get("VolumeSizeInGB"),
        "SecurityGroupIds": sorted(vpc.get("SecurityGroupIds") or []),
        "Subnets": sorted(vpc.get("Subnets") or []),
        "EnableInterContainerTrafficEncryption": bool(req.get("EnableInterContainerTrafficEncryption")),
        "EnableNetworkIsolation": bool(req.get("EnableNetworkIsolation")),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(eq=False)
class WarmPool:
    """One retained cluster's caches: a directory (bind path) or an engine volume (engine path) per host."""

    key: str
    number: int
    host_count: int
    #: The job running on the pool now, or the last one (WarmPoolStatus.ReusedByJob names the next).
    job: str
    #: Available until this time (the clock's), once released; None while a job uses it.
    available_until: float | None = None
    #: The jobs that ran on this pool, in order.
    jobs: list[str] = field(default_factory=list)

    def volume(self, run_id: str, host_index: int) -> str:
        return f"sm-warmpool-{run_id}-{self.number}-{host_index + 1}"


class WarmPools:
    """The session's warm pools. Thread-safe: jobs of one session start and end concurrently."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self._clock = clock
        self._lock = threading.Lock()
        self._pools: list[WarmPool] = []
        self._count = 0
        #: Engine volumes of terminated pools still to remove (the caller removes them: only it has the engine).
        self.terminated: list[WarmPool] = []

    def directory(self, pool: WarmPool, host_index: int) -> Path:
        return self.root / f"warmpool-{pool.number}" / f"algo-{host_index + 1}"

    def claim(self, spec: TrainingJobSpec) -> tuple[WarmPool, bool] | None:
        """The pool the job runs on and whether it was reused (warm) rather than new (cold); None without one."""
        if not warm_pool_eligible(spec):
            return None
        key = match_key(spec)
        with self._lock:
            self._expire()
            for pool in self._pools:
                if pool.key == key and pool.available_until is not None:
                    pool.available_until, pool.job = None, spec.name
                    pool.jobs.append(spec.name)
                    return pool, True
            self._count += 1
            pool = WarmPool(key, self._count, spec.instance_count, spec.name, jobs=[spec.name])
            self._pools.append(pool)
        for index in range(pool.host_count):
            path = self.directory(pool, index)
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # as the platform's other writable directories (docs/contract.md: layout)
        return pool, False

    def release(self, pool: WarmPool, keep_alive_s: int, healthy: bool) -> None:
        """The pool's job ended: Available for `keep_alive_s` (KeepAlivePeriodInSeconds), or terminated at once
        when the job ended for a reason that may have harmed the cluster (an engine fault)."""
        with self._lock:
            if healthy:
                pool.available_until = self._clock() + keep_alive_s
            else:
                self._terminate(pool)

    def available(self) -> list[WarmPool]:
        with self._lock:
            self._expire()
            return [p for p in self._pools if p.available_until is not None]

    def _expire(self) -> None:
        now = self._clock()
        for pool in [p for p in self._pools if p.available_until is not None and p.available_until <= now]:
            self._terminate(pool)

    def _terminate(self, pool: WarmPool) -> None:
        with contextlib.suppress(ValueError):
            self._pools.remove(pool)
        self.terminated.append(pool)
        shutil.rmtree(self.root / f"warmpool-{pool.number}", ignore_errors=True)


class JobWarmPool:
    """One job's warm pool, as its data path mounts it: host directories bind-mounted (bind path) or engine volumes
    of the session (engine path, where no host directory reaches the engine). Claimed once per job, whatever
    the number of attempts; released when the job's resources go."""

    def __init__(self, pools: WarmPools, spec: TrainingJobSpec, run_id: str, engine: Engine | None = None) -> None:
        self.pools = pools
        self.spec = spec
        self.run_id = run_id
        self.engine = engine
        self.pool: WarmPool | None = None
        self.reused = False
        self._claimed = False

    def claim(self) -> None:
        if self._claimed:
            return
        self._claimed = True
        claimed = self.pools.claim(self.spec)
        if claimed is None:
            return
        self.pool, self.reused = claimed
        if self.engine is not None and not self.reused:
            for index in range(self.pool.host_count):
                self.engine.create_volume(self.pool.volume(self.run_id, index), {LABEL_RUN: self.run_id})
        self._drop_terminated()

    def binds(self, host_index: int) -> dict[str, dict[str, str]]:
        if self.pool is None:
            return {}
        return {str(self.pools.directory(self.pool, host_index)): {"bind": WARM_POOL_CACHE, "mode": "rw"}}

    def mounts(self, host_index: int) -> list[MountSpec]:
        if self.pool is None:
            return []
        return [MountSpec(WARM_POOL_CACHE, self.pool.volume(self.run_id, host_index), type="volume")]

    def release(self, healthy: bool) -> None:
        if self.pool is not None:
            self.pools.release(self.pool, int(self.spec.keep_alive_s or 0), healthy)
            self.pool = None
        self._drop_terminated()

    def _drop_terminated(self) -> None:
        if self.engine is None:  # bind path: the directories went with the pools
            self.pools.terminated.clear()
            return
        while self.pools.terminated:
            pool = self.pools.terminated.pop()
            for index in range(pool.host_count):
                with contextlib.suppress(Exception):
                    self.engine.remove_volume(pool.volume(self.run_id, index))
